"""Child process that extracts a PDF's text page by page, under time and memory limits.

Run as `python -m api.rag.pdf_child PATH MAX_PAGES MAX_CHARS CPU_SECONDS MEMORY_MB`. The
pages are read with LangChain's `PyPDFLoader` (langchain-community, over pypdf), page by page.
The child imports the loader, then limits itself (crafted PDFs can loop forever or explode
memory): CPU_SECONDS of CPU and MEMORY_MB of address space on top of what the loader's
libraries took at start-up, so the limits are the PDF's alone. It then prints an empty line
that says it is ready (start-up on a busy machine is not the PDF's fault), and one JSON
object: {"pages": [...]} or {"error": KIND, "detail": "..."}.
"""

import json
import resource
import sys
import warnings
from typing import Any


def _address_space() -> int:
    """Bytes of address space this process holds now (VmSize)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _limit(cpu_seconds: int, memory_mb: int) -> None:
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime) + 1 + cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    memory = _address_space() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def _loader(path: str) -> Any:
    with warnings.catch_warnings():  # langchain-community announces its own sunset
        warnings.simplefilter("ignore")
        from langchain_community.document_loaders.pdf import PyPDFLoader
    return PyPDFLoader(path, mode="page")


def extract(path: str, max_pages: int, max_chars: int) -> dict[str, object]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PyPdfError

    try:
        # the page count and encryption before any page is read (the loader reads metadata
        # and page labels first, and would decrypt with an empty password)
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            return {"error": "encrypted", "detail": "the PDF is encrypted"}
        count = len(reader.pages)
        if count > max_pages:
            return {"error": "too_many_pages", "detail": f"{count} pages"}
        del reader
        pages, total = [], 0
        for document in _loader(path).lazy_load():
            text = document.page_content or ""
            total += len(text)
            if total > max_chars:
                return {"error": "too_much_text", "detail": f"over {max_chars} characters"}
            pages.append(text)
    except FileNotDecryptedError:
        return {"error": "encrypted", "detail": "the PDF is encrypted"}
    except MemoryError:
        return {"error": "memory", "detail": "the parser ran out of memory"}
    except LimitReachedError as exc:  # pypdf's own guard: a stream inflating past 75 MB, a loop
        return {"error": "limit", "detail": str(exc)[:300]}
    except (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,
        OSError,
    ) as exc:
        return {"error": "unreadable", "detail": f"{type(exc).__name__}: {exc}"[:300]}
    return {"pages": pages}


def main(argv: list[str]) -> None:
    path, max_pages, max_chars, cpu, memory = argv
    _loader(path)  # imported before the limits and the parent's clock start
    _limit(int(cpu), int(memory))

    sys.stdout.write("\n")  # ready: the parent's wall-clock limit counts from here
    sys.stdout.flush()
    result = extract(path, int(max_pages), int(max_chars))
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
