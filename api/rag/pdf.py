"""PDF validation and text extraction; the parsing itself runs in api.rag.pdf_child."""

import json
import math
import os
import selectors
import subprocess
import sys
from pathlib import Path

from api.childproc import die_with_parent
from api.config import REPO_ROOT, Settings
from api.errors import InvalidInput

PDF_MAGIC = b"%PDF-"
STARTUP_ALLOWANCE_S = 60  # Python and pypdf loading, on a machine busy training


def check_pdf_header(head: bytes, *, name: str) -> None:
    """422 unless the file starts like a PDF (the extension proves nothing)."""
    if not head.startswith(PDF_MAGIC):
        raise InvalidInput(
            f"{name!r} is not a PDF (it does not start with %PDF-); upload a PDF file."
        )


def extract_pages(path: Path, *, name: str, settings: Settings) -> list[str]:
    """The text of each page, parsed in a child process with time and memory limits.

    Raises InvalidInput with a message a user can act on for an encrypted, empty,
    unreadable, oversized or too slow PDF; the child is killed when over its time.
    """
    limit = settings.rag_parse_timeout_s
    cmd = [
        sys.executable,
        "-m",
        "api.rag.pdf_child",
        str(path),
        str(settings.rag_max_pages),
        str(settings.rag_max_chars),
        str(math.ceil(limit) + 1),
        str(settings.rag_parse_memory_mb),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=REPO_ROOT,
        preexec_fn=die_with_parent(),
    ) as child:
        try:
            stdout = _run_child(child, limit)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            raise InvalidInput(
                f"{name!r} could not be read within the {limit:g} s parsing "
                "limit; the PDF may be malformed. Nothing was imported."
            ) from None
    try:
        result = json.loads(stdout)
    except ValueError:
        # killed by RLIMIT_CPU, or crashed (e.g. MemoryError outside Python's reach)
        raise InvalidInput(
            f"{name!r} could not be parsed: the parser stopped "
            f"(exit status {child.returncode}) within its limits of {limit:g} s "
            f"and {settings.rag_parse_memory_mb} MiB. Nothing was imported."
        ) from None
    if "pages" in result:
        pages: list[str] = result["pages"]
        if not any(p.strip() for p in pages):
            raise InvalidInput(
                f"{name!r} contains no extractable text (empty or scanned "
                "pages); import a PDF with a text layer."
            )
        return pages
    raise InvalidInput(_message(result["error"], result["detail"], name, settings))


def _run_child(child: subprocess.Popen[bytes], limit: float) -> bytes:
    """The child's output; the wall-clock limit starts once it says it is ready."""
    assert child.stdout is not None
    # selectors (epoll), not select(): select() refuses descriptors above 1023, which a
    # process with many open connections and files reaches
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        ready = selector.select(STARTUP_ALLOWANCE_S)
    if not ready:
        raise subprocess.TimeoutExpired(child.args, STARTUP_ALLOWANCE_S)
    child.stdout.readline()  # the ready line (or b"" if it died starting)
    stdout, _ = child.communicate(timeout=limit)
    return stdout


def _message(kind: str, detail: str, name: str, settings: Settings) -> str:
    if kind == "encrypted":
        return f"{name!r} is encrypted; remove the password and upload it again."
    if kind == "too_many_pages":
        return (
            f"{name!r} has {detail}, over the limit of {settings.rag_max_pages} "
            "(LLM_RAG_MAX_PAGES); split it."
        )
    if kind == "too_much_text":
        return (
            f"{name!r} has more than {settings.rag_max_chars} characters of text "
            "(LLM_RAG_MAX_CHARS); split it."
        )
    if kind == "memory":
        return (
            f"{name!r} needs more than {settings.rag_parse_memory_mb} MiB to parse "
            "(LLM_RAG_PARSE_MEMORY_MB); the PDF may be malformed."
        )
    if kind == "limit":
        return (
            f"{name!r} trips the PDF parser's safety limit ({detail}): a stream inflates "
            "to too much data or refers to itself. Nothing was imported; check the file."
        )
    return f"{name!r} is not a readable PDF ({detail}); check the file and upload it again."
