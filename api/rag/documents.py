"""Import, list and delete a model's documents; the service behind /importDocument & co.

An import either fully happens or leaves nothing: the PDF is parsed and its chunks are
stored under a fresh import id, then one SQLite write makes them the document's current
version; only then are the replaced version's chunks and file removed.
"""

import logging
import re
import shutil
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING


from api.config import Settings
from api.errors import InvalidInput, NotFound
from api.rag.catalog import DocumentCatalog, DocumentRecord
from api.rag.embed import Embedder, build_embedder
from api.rag.pdf import extract_pages

if TYPE_CHECKING:
    from langchain_core.documents import Document

    from api.rag.store import VectorStore

log = logging.getLogger(__name__)

# ASCII only (no look-alike letters); no trailing space or dot, which a listing hides
_DOC_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9 ._()+-]{0,125}[A-Za-z0-9_()+-])?$")
DOC_NAME_RULE = ("1-127 characters: ASCII letters, digits, spaces and . _ ( ) + -, starting "
                 "with a letter or digit, not ending with a space or '.', without '..' or any "
                 "path")


def check_document_name(name: str) -> str:
    if not _DOC_NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidInput(f"Invalid document name {name!r}: use {DOC_NAME_RULE}.")
    return name


def split_pages(pages: list[str], *, model: str, document: str, import_id: str,
                settings: Settings) -> list["Document"]:
    """Chunks in reading order with model, document, page (1-based) and chunk index."""
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=settings.rag_chunk_size,
                                              chunk_overlap=settings.rag_chunk_overlap)
    chunks: list[Document] = []
    for number, text in enumerate(pages, start=1):
        for piece in splitter.split_text(text):
            chunks.append(Document(page_content=piece, metadata={
                "model": model, "document": document, "page": number,
                "chunk": len(chunks), "import_id": import_id}))
    return chunks


class DocumentService:
    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.catalog = DocumentCatalog(settings.data_dir / "documents.sqlite")
        self.files_dir = settings.data_dir / "documents"
        self.incoming_dir = self.files_dir / ".incoming"
        self._embedder = embedder
        self._store: "VectorStore | None" = None
        self._store_lock = threading.Lock()
        self._parsing = threading.BoundedSemaphore(2)  # child processes at once

    @property
    def store(self) -> "VectorStore":
        from api.rag.store import VectorStore  # chromadb takes seconds to import: on first use

        with self._store_lock:
            if self._store is None:  # the embedder loads torch: only when first needed
                embedder = self._embedder or build_embedder(self.settings)
                self._store = VectorStore(self.settings, embedder)
            return self._store

    def import_document(self, *, model: str, name: str, upload: Path,
                        size: int) -> tuple[DocumentRecord, bool]:
        """Parse, chunk, embed and store `upload` as `name`; returns (record, replaced)."""
        check_document_name(name)
        with self._parsing:
            pages = extract_pages(upload, name=name, settings=self.settings)
        import_id = uuid.uuid4().hex
        chunks = split_pages(pages, model=model, document=name, import_id=import_id,
                             settings=self.settings)
        folder = self.files_dir / model
        folder.mkdir(parents=True, exist_ok=True)
        stored = folder / f"{import_id}.pdf"  # our name; the client's file name is only metadata
        upload.replace(stored)
        record = DocumentRecord(
            model=model, name=name, import_id=import_id, file=stored.name, pages=len(pages),
            chunks=len(chunks), size=size,
            imported_at=datetime.now(UTC).isoformat(timespec="seconds"))
        try:
            self.store.add(model, chunks, [f"{import_id}-{c.metadata['chunk']}" for c in chunks])
            old = self.catalog.put(record)
        except BaseException:
            self._forget(model, import_id, stored)
            raise
        if old is not None:
            self._forget(model, old.import_id, folder / old.file)
        return record, old is not None

    def _forget(self, model: str, import_id: str, file: Path) -> None:
        """Best-effort removal of an import's chunks and file (invisible to retrieval already)."""
        file.unlink(missing_ok=True)
        try:
            self.store.delete_import(model, import_id)
        except Exception:
            log.exception("could not remove chunks of import %s of %s", import_id, model)

    def list_documents(self, *, model: str) -> list[DocumentRecord]:
        return self.catalog.of_model(model)

    def get(self, *, model: str, names: list[str] | None) -> list[DocumentRecord]:
        """The named documents (all of them when `names` is None); NotFound lists the rest."""
        records = self.catalog.of_model(model)
        if not records:
            raise NotFound(f"Model {model!r} has no documents; "
                           "import one with POST /importDocument.")
        if names is None:
            return records
        by_name = {r.name: r for r in records}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise NotFound(f"Document {missing[0]!r} not found for model {model!r}. "
                           f"Documents: {', '.join(by_name)}.")
        return [by_name[n] for n in dict.fromkeys(names)]

    def delete_document(self, *, model: str, name: str) -> None:
        record = self.catalog.remove(model, name)
        if record is None:
            known = ", ".join(r.name for r in self.catalog.of_model(model)) or "none"
            raise NotFound(f"Document {name!r} not found for model {model!r}. Documents: {known}.")
        self._forget(model, record.import_id, self.files_dir / model / record.file)

    def delete_all(self, *, model: str) -> int:
        """Delete every document of `model` and its collection; also used when a model goes."""
        records = self.catalog.remove_all(model)
        if records or (self.files_dir / model).exists():
            try:
                self.store.drop(model)
            except Exception:
                log.exception("could not drop the collection of %s", model)
            shutil.rmtree(self.files_dir / model, ignore_errors=True)
        return len(records)
