"""Child process that extracts a PDF's text page by page, under time and memory limits.

Run as `python -m api.rag.pdf_child PATH MAX_PAGES MAX_CHARS CPU_SECONDS MEMORY_MB`. It
limits itself first (crafted PDFs can loop forever or explode memory), then prints one
JSON object: {"pages": [...]} or {"error": KIND, "detail": "..."}, after an empty line that
says it is ready (start-up on a busy machine is not the PDF's fault). Only pypdf is imported.
"""

import json
import resource
import sys


def _limit(cpu_seconds: int, memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def extract(path: str, max_pages: int, max_chars: int) -> dict[str, object]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PyPdfError

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            return {"error": "encrypted", "detail": "the PDF is encrypted"}
        count = len(reader.pages)
        if count > max_pages:
            return {"error": "too_many_pages", "detail": f"{count} pages"}
        pages, total = [], 0
        for page in reader.pages:
            text = page.extract_text() or ""
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
    _limit(int(cpu), int(memory))
    import pypdf  # noqa: F401  (loaded before the parent's clock starts)

    sys.stdout.write("\n")  # ready: the parent's wall-clock limit counts from here
    sys.stdout.flush()
    result = extract(path, int(max_pages), int(max_chars))
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
