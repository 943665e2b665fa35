"""Vectors in ChromaDB through langchain-chroma: one collection per model.

Embedded `PersistentClient` on disk by default; `HttpClient` when LLM_CHROMA_URL is set
(the compose deployment). This is the only module that imports chromadb.
"""

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import chromadb
import httpx
from chromadb.config import Settings as ChromaSettings
from langchain_chroma import Chroma
from langchain_core.documents import Document

from api.config import Settings
from api.errors import InvalidInput, Unavailable
from api.names import is_valid_name
from api.rag.embed import Embedder

# Chroma's rule: 3-512 of [a-zA-Z0-9._-], alphanumeric at both ends, no "..".
_COLLECTION_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")


def collection_name(model: str) -> str:
    """`model-<name>-docs`: model names are already safe file names; check Chroma's rule too."""
    name = f"model-{model}-docs"
    if not is_valid_name(model) or not _COLLECTION_RE.fullmatch(name) or ".." in name:
        raise InvalidInput(f"Model name {model!r} cannot name a document collection.")
    return name


@contextmanager
def reachable(settings: Settings) -> Iterator[None]:
    """A Chroma server that went away mid-request is a 503 that says so, not a 500; the
    client reconnects by itself once the server is back."""
    try:
        yield
    except httpx.TransportError as exc:
        raise Unavailable(
            f"Chroma at {settings.chroma_url} is not reachable ({exc}); start "
            "it or fix LLM_CHROMA_URL, then try again."
        ) from exc


def connect(settings: Settings) -> chromadb.ClientAPI:
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        try:
            return chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as exc:  # chromadb raises ValueError/ConnectionError variants
            raise Unavailable(
                f"Chroma at {settings.chroma_url} is not reachable ({exc}); "
                "start it or fix LLM_CHROMA_URL."
            ) from exc
    assert settings.chroma_path is not None
    settings.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


class VectorStore:
    """Chunks of every model's documents; each chunk carries its import's id."""

    def __init__(self, settings: Settings, embedder: Embedder):
        self.settings = settings
        self.embedder = embedder
        self._client: chromadb.ClientAPI | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> chromadb.ClientAPI:
        with self._lock:
            if self._client is None:
                self._client = connect(self.settings)
            return self._client

    def collection(self, model: str) -> Chroma:
        return Chroma(
            collection_name=collection_name(model),
            client=self.client,
            embedding_function=self.embedder,  # type: ignore[arg-type]
            collection_metadata={"hnsw:space": "cosine"},
        )

    def add(self, model: str, chunks: list[Document], ids: list[str]) -> None:
        collection = self.collection(model)
        step = 512  # bounded requests to Chroma; the embedder batches within each
        for i in range(0, len(chunks), step):
            collection.add_documents(chunks[i : i + step], ids=ids[i : i + step])

    def search(
        self, model: str, queries: list[str], *, k: int, where: dict[str, Any]
    ) -> list[list[tuple[Document, float]]]:
        """The `k` nearest chunks (with their cosine distance) for each query: the queries
        are embedded in one batch and searched in one request to Chroma."""
        try:
            collection = self.client.get_collection(collection_name(model))
        except (ValueError, chromadb.errors.NotFoundError):
            return [[] for _ in queries]
        vectors = self.embedder.embed_documents(queries)
        got = collection.query(
            query_embeddings=vectors,  # type: ignore[arg-type]
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            [
                (Document(page_content=text or "", metadata=dict(meta or {}), id=chunk_id), dist)
                for chunk_id, text, meta, dist in zip(ids, texts, metas, dists, strict=True)
            ]
            for ids, texts, metas, dists in zip(
                got["ids"],
                got["documents"] or [],
                got["metadatas"] or [],
                got["distances"] or [],
                strict=True,
            )
        ]

    def delete_import(self, model: str, import_id: str) -> None:
        try:
            collection = self.client.get_collection(collection_name(model))
        except (ValueError, chromadb.errors.NotFoundError):
            return  # no collection: no chunks
        collection.delete(where={"import_id": import_id})

    def passages(self, model: str, import_ids: list[str]) -> list[dict[str, Any]]:
        """Every chunk of these imports in reading order: text, document, page, chunk."""
        try:
            collection = self.client.get_collection(collection_name(model))
        except (ValueError, chromadb.errors.NotFoundError):
            return []
        got = collection.get(
            where={"import_id": {"$in": import_ids}},  # type: ignore[dict-item]
            include=["documents", "metadatas"],
        )
        rows = [
            {
                "text": text,
                "document": meta["document"],
                "page": meta["page"],
                "chunk": meta["chunk"],
            }
            for text, meta in zip(got["documents"] or [], got["metadatas"] or [], strict=True)
        ]
        return sorted(rows, key=lambda r: (r["document"], r["chunk"]))

    def drop(self, model: str) -> None:
        name = collection_name(model)
        try:
            self.client.delete_collection(name)
        except (ValueError, chromadb.errors.NotFoundError):
            pass  # never created
