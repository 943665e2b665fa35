"""PDFs written by the tests: known facts on known pages, and broken or hostile files."""

import io
from pathlib import Path

from fpdf import FPDF
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DecodedStreamObject, NameObject

HANDBOOK = [
    "Acme Employee Handbook. Introduction. This handbook describes how Acme Corporation "
    "works: our history, our offices and the people who keep them running.",
    "Vacation policy. Every employee receives 27 days of paid vacation per year. Vacation "
    "requests are approved by your team lead.",
    "Parking. The staff car park is on level B4 and the gate access code is ZEBRA-42. "
    "Visitors park on level B1.",
    "Office pets. Only goldfish are allowed in the office, and they must live on the "
    "third floor near the kitchen.",
]
MENU = [
    "Cafeteria menu. The cafeteria serves vegetable lasagne every Thursday at lunch time.",
    "Opening hours. The cafeteria opens at 8 am and closes at 3 pm on weekdays.",
]


def pdf_bytes(pages: list[str]) -> bytes:
    """One page per string, text wrapped to the page (an empty string gives a blank page)."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def write_pdf(path: Path, pages: list[str]) -> Path:
    path.write_bytes(pdf_bytes(pages))
    return path


def encrypted_pdf_bytes(pages: list[str], password: str = "s3cret") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    writer.encrypt(
        user_password=password, owner_password=password, algorithm="RC4-128"
    )  # AES needs `cryptography`
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def slow_pdf_bytes(operations: int = 1_000_000) -> bytes:
    """A small, valid PDF whose one page holds a million text operators (7 MB once
    inflated, a few kB compressed): text extraction takes minutes, like a crafted PDF."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(["x"]))))
    stream = DecodedStreamObject()
    stream.set_data(b"BT /F1 12 Tf " + b"(a) Tj " * operations + b"ET")
    page = writer.pages[0]
    page[NameObject("/Contents")] = writer._add_object(stream.flate_encode())
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def inflating_pdf_bytes(size: int = 70_000_000) -> bytes:
    """A ~70 kB PDF whose page content inflates to `size` bytes (a decompression bomb,
    kept under pypdf's own 75 MB inflation limit so that our memory limit is what stops it)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(["x"]))))
    stream = DecodedStreamObject()
    stream.set_data(b"BT (a) Tj ET " + b" " * size)
    writer.pages[0][NameObject("/Contents")] = writer._add_object(stream.flate_encode())
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# ------------------------------------------------- hand-written PDFs with loops and bombs

_TEXT = b"BT /F1 12 Tf 72 700 Td (Loop test text) Tj ET"
_CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
_PAGES = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
_PAGE = (
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
    b"/Resources << /Font << /F1 5 0 R >> >> >>"
)
_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d%s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def raw_pdf(objects: list[bytes], *, prev_self: bool = False) -> bytes:
    """A classic-xref PDF of `objects` (numbered from 1; 1 is the catalog). `prev_self`:
    the trailer's /Prev points at its own xref table, a circular chain."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % o for o in offsets)
    prev = b" /Prev %d" % xref if prev_self else b""
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, prev, xref)
    )
    return out.getvalue()


def looping_pdf_bytes(kind: str) -> bytes:
    """One page saying "Loop test text", with a loop: `xref` (a /Prev chain pointing at
    itself), `outline` (a bookmark that is its own child and next sibling), `page_tree`
    (the page tree lists itself as a kid) or `length` (a stream's /Length is the stream)."""
    objects = [_CATALOG, _PAGES, _PAGE, _stream(_TEXT), _FONT]
    if kind == "outline":
        objects[0] = b"<< /Type /Catalog /Pages 2 0 R /Outlines 6 0 R >>"
        objects += [
            b"<< /Type /Outlines /First 7 0 R /Last 7 0 R /Count 1 >>",
            b"<< /Title (Loop) /Parent 6 0 R /Next 7 0 R /First 7 0 R /Dest [3 0 R /Fit] >>",
        ]
    elif kind == "page_tree":
        objects[1] = b"<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2 >>"
    elif kind == "length":
        objects[3] = b"<< /Length 4 0 R >>\nstream\n" + _TEXT + b"\nendstream"
    elif kind != "xref":
        raise ValueError(kind)
    return raw_pdf(objects, prev_self=kind == "xref")


def bomb_pdf_bytes(size: int = 100_000_000) -> bytes:
    """A ~100 kB PDF whose page content inflates to `size` bytes, compressed piece by piece
    (the inflated stream is never held in memory here)."""
    import zlib

    deflate = zlib.compressobj(1)
    block = b" " * (1 << 20)
    parts = [deflate.compress(_TEXT)]
    parts += [deflate.compress(block) for _ in range(size >> 20)]
    parts.append(deflate.flush())
    return raw_pdf(
        [_CATALOG, _PAGES, _PAGE, _stream(b"".join(parts), b" /Filter /FlateDecode"), _FONT]
    )
