"""The documents service: an import happens fully or not at all."""

import pytest

from api.config import Settings
from api.rag.documents import DocumentService
from api.rag.embed import build_embedder
from tests.utils.pdfs import HANDBOOK, MENU, write_pdf


class BrokenEmbedder:
    """The real embedder for queries; a failure (e.g. out of memory) for documents."""

    def __init__(self, real):
        self.real = real

    def embed_documents(self, texts):
        raise RuntimeError("embedding failed")

    def embed_query(self, text):
        return self.real.embed_query(text)


@pytest.fixture
def service(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    return DocumentService(settings, embedder=build_embedder(settings))


def files(service):
    return sorted(p.name for p in service.files_dir.rglob("*") if p.is_file())


def import_pdf(service, tmp_path, name, pages):
    upload = write_pdf(tmp_path / f"upload-{len(list(tmp_path.iterdir()))}.part", pages)
    return service.import_document(model="hr", name=name, upload=upload, size=upload.stat().st_size)


def test_failed_import_leaves_nothing_behind(service, tmp_path):
    service.store.embedder = BrokenEmbedder(service.store.embedder)
    with pytest.raises(RuntimeError, match="embedding failed"):
        import_pdf(service, tmp_path, "handbook.pdf", HANDBOOK)
    assert service.list_documents(model="hr") == []
    assert files(service) == []
    assert service.store.collection("hr")._collection.count() == 0


def test_failed_replacement_keeps_the_previous_version(service, tmp_path):
    first, _ = import_pdf(service, tmp_path, "handbook.pdf", HANDBOOK)
    service.store.embedder = BrokenEmbedder(service.store.embedder)
    with pytest.raises(RuntimeError):
        import_pdf(service, tmp_path, "handbook.pdf", MENU)
    assert service.list_documents(model="hr") == [first]
    assert files(service) == [first.file]
    chunks = service.store.collection("hr")._collection.get(include=["metadatas"])["metadatas"]
    assert {m["import_id"] for m in chunks} == {first.import_id}
    assert len(chunks) == 4


def test_replacement_swaps_chunks_and_file(service, tmp_path):
    first, _ = import_pdf(service, tmp_path, "handbook.pdf", HANDBOOK)
    second, replaced = import_pdf(service, tmp_path, "handbook.pdf", MENU)
    assert replaced and second.import_id != first.import_id
    assert files(service) == [second.file]
    chunks = service.store.collection("hr")._collection.get(include=["metadatas"])["metadatas"]
    assert sorted((m["page"], m["chunk"], m["import_id"]) for m in chunks) == [
        (1, 0, second.import_id),
        (2, 1, second.import_id),
    ]
    assert all(m["model"] == "hr" and m["document"] == "handbook.pdf" for m in chunks)


def test_chunks_follow_the_configured_size(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", rag_chunk_size=100, rag_chunk_overlap=20)
    service = DocumentService(settings, embedder=build_embedder(settings))
    record, _ = import_pdf(service, tmp_path, "handbook.pdf", HANDBOOK)
    texts = service.store.collection("hr")._collection.get()["documents"]
    assert record.chunks == len(texts) > 4
    assert max(len(t) for t in texts) <= 100
