"""Text extraction in the limited child process, on PDFs the tests write."""

import pytest

from api.config import Settings
from api.errors import InvalidInput
from api.rag.pdf import check_pdf_header, extract_pages
from tests.utils.pdfs import HANDBOOK, inflating_pdf_bytes, slow_pdf_bytes, write_pdf


def settings(tmp_path, **overrides) -> Settings:
    return Settings(data_dir=tmp_path / "data", **overrides)


def test_pages_come_back_in_order(tmp_path):
    pages = extract_pages(
        write_pdf(tmp_path / "h.pdf", HANDBOOK), name="h.pdf", settings=settings(tmp_path)
    )
    assert len(pages) == 4
    assert "27 days of paid vacation" in pages[1]
    assert "ZEBRA-42" in pages[2]
    assert "goldfish" in pages[3]


def test_page_cap(tmp_path):
    with pytest.raises(InvalidInput) as caught:
        extract_pages(
            write_pdf(tmp_path / "h.pdf", HANDBOOK),
            name="h.pdf",
            settings=settings(tmp_path, rag_max_pages=3),
        )
    assert caught.value.detail == (
        "'h.pdf' has 4 pages, over the limit of 3 (LLM_RAG_MAX_PAGES); split it."
    )


def test_character_cap(tmp_path):
    with pytest.raises(InvalidInput) as caught:
        extract_pages(
            write_pdf(tmp_path / "h.pdf", HANDBOOK * 3),
            name="h.pdf",
            settings=settings(tmp_path, rag_max_chars=1000),
        )
    assert caught.value.detail == (
        "'h.pdf' has more than 1000 characters of text (LLM_RAG_MAX_CHARS); split it."
    )


def test_a_parser_that_hangs_is_killed_at_the_time_limit(tmp_path):
    path = tmp_path / "slow.pdf"
    path.write_bytes(slow_pdf_bytes())
    with pytest.raises(InvalidInput) as caught:
        extract_pages(path, name="slow.pdf", settings=settings(tmp_path, rag_parse_timeout_s=0.5))
    assert caught.value.detail == (
        "'slow.pdf' could not be read within the 0.5 s parsing "
        "limit; the PDF may be malformed. Nothing was imported."
    )


def test_a_parser_over_its_memory_limit_fails_cleanly(tmp_path):
    path = tmp_path / "bomb.pdf"
    path.write_bytes(inflating_pdf_bytes())
    with pytest.raises(InvalidInput) as caught:
        extract_pages(path, name="bomb.pdf", settings=settings(tmp_path, rag_parse_memory_mb=128))
    assert caught.value.detail == (
        "'bomb.pdf' needs more than 128 MiB to parse "
        "(LLM_RAG_PARSE_MEMORY_MB); the PDF may be malformed."
    )


@pytest.mark.parametrize("head", [b"", b"%PD", b"PK\x03\x04", b"hello", b" %PDF-"])
def test_header_check(head):
    with pytest.raises(InvalidInput):
        check_pdf_header(head, name="x.pdf")
    check_pdf_header(b"%PDF-", name="x.pdf")


def test_the_child_reads_pages_with_langchains_pypdfloader(tmp_path):
    """The pages are PyPDFLoader's documents, one per page; the child proves it loaded the
    loader by leaving its module in sys.modules (checked by running it with -c)."""
    import subprocess
    import sys
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.document_loaders.pdf import PyPDFLoader

    path = write_pdf(tmp_path / "h.pdf", HANDBOOK)
    pages = extract_pages(path, name="h.pdf", settings=settings(tmp_path))
    assert pages == [d.page_content for d in PyPDFLoader(str(path), mode="page").lazy_load()]
    probe = (
        "import sys, json; from api.rag import pdf_child as c; "
        f"r = c.extract({str(path)!r}, 100, 10**6); "
        "print(json.dumps(['langchain_community.document_loaders.pdf' in sys.modules, r]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded, result = __import__("json").loads(out.stdout)
    assert loaded and result["pages"] == pages
