"""Import, list and delete a model's documents; the service behind /importDocument & co.

An import either fully happens or leaves nothing: the PDF is parsed and its chunks are
stored under a fresh import id, then one database write makes them the document's current
version; only then are the replaced version's chunks and file removed. The catalog's
`pending` rows name whatever an interrupted import or delete left, and `recover()` (at
start-up, and before each import) removes it, except what an import in progress holds: each
holds the database lock `import-<id>` (api/db/locks.py) until it has committed or cleaned
up, so that with several replicas one's start-up never removes another's import.
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
from api.db import db_lock
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
DOC_NAME_RULE = (
    "1-127 characters: ASCII letters, digits, spaces and . _ ( ) + -, starting "
    "with a letter or digit, not ending with a space or '.', without '..' or any "
    "path"
)


def check_document_name(name: str) -> str:
    if not _DOC_NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidInput(f"Invalid document name {name!r}: use {DOC_NAME_RULE}.")
    return name


def split_pages(
    pages: list[str], *, model: str, document: str, import_id: str, settings: Settings
) -> list["Document"]:
    """Chunks in reading order with model, document, page (1-based) and chunk index."""
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=settings.rag_chunk_size, chunk_overlap=settings.rag_chunk_overlap
    )
    chunks: list[Document] = []
    for number, text in enumerate(pages, start=1):
        for piece in splitter.split_text(text):
            chunks.append(
                Document(
                    page_content=piece,
                    metadata={
                        "model": model,
                        "document": document,
                        "page": number,
                        "chunk": len(chunks),
                        "import_id": import_id,
                    },
                )
            )
    return chunks


def _import_lock(import_id: str) -> str:
    return f"import-{import_id}"


class _LazyEmbedder:
    """The configured embedder, built on the first text to embed (deleting needs none)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return build_embedder(self.settings).embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return build_embedder(self.settings).embed_query(text)


class DocumentService:
    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.catalog = DocumentCatalog(settings.documents_db)
        self.files_dir = settings.data_dir / "documents"
        # each replica's own: its start-up clears it without touching another's uploads
        self.incoming_dir = self.files_dir / ".incoming" / settings.replica_id
        self._embedder = embedder
        self._store: VectorStore | None = None
        self._store_lock = threading.Lock()
        self._parsing = threading.BoundedSemaphore(2)  # child processes at once

    @property
    def store(self) -> "VectorStore":
        from api.rag.store import VectorStore  # chromadb takes seconds to import: on first use

        with self._store_lock:
            if self._store is None:  # the embedder loads torch: only when first embedding
                embedder = self._embedder or _LazyEmbedder(self.settings)
                self._store = VectorStore(self.settings, embedder)
            return self._store

    def import_document(
        self, *, model: str, name: str, upload: Path, size: int
    ) -> tuple[DocumentRecord, bool]:
        """Parse, chunk, embed and store `upload` as `name`; returns (record, replaced)."""
        check_document_name(name)
        with self._parsing:
            pages = extract_pages(upload, name=name, settings=self.settings)
        import_id = uuid.uuid4().hex
        chunks = split_pages(
            pages, model=model, document=name, import_id=import_id, settings=self.settings
        )
        folder = self.files_dir / model
        folder.mkdir(parents=True, exist_ok=True)
        stored = folder / f"{import_id}.pdf"  # our name; the client's file name is only metadata
        self.recover()
        record = DocumentRecord(
            model=model,
            name=name,
            import_id=import_id,
            file=stored.name,
            pages=len(pages),
            chunks=len(chunks),
            size=size,
            imported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        # held until the import has committed or cleaned up: no recover() (of this or
        # another replica) removes its pending file and chunks meanwhile
        with db_lock(self.settings, _import_lock(import_id), once=True):
            self.catalog.begin(model=model, import_id=import_id, file=stored.name)
            try:
                upload.replace(stored)
                from api.rag.store import reachable

                with reachable(self.settings):
                    self.store.add(
                        model, chunks, [f"{import_id}-{c.metadata['chunk']}" for c in chunks]
                    )
                old = self.catalog.put(record)
            except BaseException:
                self._forget(model, import_id, stored)
                raise
        if old is not None:
            self._forget(model, old.import_id, folder / old.file)
        return record, old is not None

    def _forget(self, model: str, import_id: str, file: Path) -> bool:
        """Best-effort removal of a pending import's chunks and file (invisible to retrieval
        already); its pending row goes once both are gone, else a later recover() retries."""
        file.unlink(missing_ok=True)
        try:
            self.store.delete_import(model, import_id)
        except Exception as exc:
            log.warning(
                "could not remove chunks of import %s of %s (%s); will retry", import_id, model, exc
            )
            return False
        self.catalog.done(import_id)
        return True

    def recover(self, *, startup: bool = False) -> None:
        """Remove what interrupted imports and deletes left: pending imports' files and
        chunks (not those of imports running now) and, at start-up, when no request is in
        flight, unfinished uploads and PDFs that no document row names."""
        if startup:
            shutil.rmtree(self.incoming_dir, ignore_errors=True)
        for model, import_id, file in self.catalog.pending():
            with db_lock(self.settings, _import_lock(import_id), wait=False, once=True) as idle:
                if not idle:
                    continue  # in progress, here or on another replica
                if not self._forget(model, import_id, self.files_dir / model / file):
                    break  # Chroma unreachable: the next import or start-up tries again
        if startup and self.files_dir.is_dir():
            for folder in (p for p in self.files_dir.iterdir() if p.is_dir() and p.name[0] != "."):
                # listed before the catalog is read: a file there now was begun (pending)
                # before, so an import in flight on another replica is known below
                files = list(folder.iterdir())
                known = {r.file for r in self.catalog.of_model(folder.name)}
                known |= {f for m, _, f in self.catalog.pending() if m == folder.name}
                for orphan in (f for f in files if f.name not in known):
                    orphan.unlink(missing_ok=True)

    def list_documents(self, *, model: str) -> list[DocumentRecord]:
        return self.catalog.of_model(model)

    def get(self, *, model: str, names: list[str] | None) -> list[DocumentRecord]:
        """The named documents (all of them when `names` is None); NotFound lists the rest."""
        records = self.catalog.of_model(model)
        if not records:
            raise NotFound(
                f"Model {model!r} has no documents; import one with POST /importDocument."
            )
        if names is None:
            return records
        by_name = {r.name: r for r in records}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise NotFound(
                f"Document {missing[0]!r} not found for model {model!r}. "
                f"Documents: {', '.join(by_name)}."
            )
        return [by_name[n] for n in dict.fromkeys(names)]

    def delete_document(self, *, model: str, name: str) -> None:
        record = self.catalog.remove(model, name)
        if record is None:
            known = ", ".join(r.name for r in self.catalog.of_model(model)) or "none"
            raise NotFound(f"Document {name!r} not found for model {model!r}. Documents: {known}.")
        self._forget(model, record.import_id, self.files_dir / model / record.file)

    def delete_all(self, *, model: str) -> int:
        """Delete every document of `model` and its collection; also used when a model goes."""
        records = self.catalog.remove_all(model)  # now pending: recover() retries a failure
        if records or (self.files_dir / model).exists():
            shutil.rmtree(self.files_dir / model, ignore_errors=True)
            try:
                self.store.drop(model)
            except Exception as exc:
                log.warning("could not drop the collection of %s (%s); will retry", model, exc)
            else:
                for record in records:
                    self.catalog.done(record.import_id)
        return len(records)
