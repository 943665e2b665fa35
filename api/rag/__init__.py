"""Retrieval: PDFs -> pages (child process) -> chunks -> vectors (Chroma) -> grounded answers."""
