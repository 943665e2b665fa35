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
    writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")  # AES needs `cryptography`
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
