"""Multi-query retrieval: one embedding batch and one vector query for all the queries,
alternatives cached per model and question, and the always/adaptive/never modes."""

from pathlib import Path

import pytest

from api.config import Settings
from api.rag import retrieve as retrieve_module
from api.rag.documents import DocumentService
from api.rag.embed import build_embedder
from api.rag.retrieve import AlternativesCache, retrieve
from api.serving.base import ServedModel
from tests.utils.fake_server import FakeServer
from tests.utils.pdfs import HANDBOOK, MENU, write_pdf

MODEL = ServedModel(name="hr", gguf_path=Path("/models/base.gguf"))


class CountingEmbedder:
    """The real embedder, counting how often and with how many texts it is called."""

    def __init__(self, real):
        self.real = real
        self.batches: list[int] = []
        self.single = 0

    def embed_documents(self, texts):
        self.batches.append(len(texts))
        return self.real.embed_documents(texts)

    def embed_query(self, text):
        self.single += 1
        return self.real.embed_query(text)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("retrieve")
    settings = Settings(data_dir=tmp / "data")
    service = DocumentService(settings, embedder=build_embedder(settings))
    records = []
    for name, pages in (("handbook", HANDBOOK), ("menu", MENU)):
        pdf = write_pdf(tmp / f"{name}.pdf", pages)
        record, _ = service.import_document(
            model="hr", name=name, upload=pdf, size=pdf.stat().st_size
        )
        records.append(record)
    return service, records


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(retrieve_module, "ALTERNATIVES", AlternativesCache())


def run(service, records, server, **settings):
    counting = CountingEmbedder(service.store.embedder)
    service.store.embedder = counting
    try:
        docs = retrieve(
            store=service.store,
            server=server,
            model=MODEL,
            question="Where do staff park their cars?",
            records=records,
            settings=Settings(data_dir=service.settings.data_dir, **settings),
        )
    finally:
        service.store.embedder = counting.real
    return docs, counting


def test_always_embeds_every_query_in_one_batch(imported):
    service, records = imported
    server = FakeServer(reply=["1. car park level\n2. lunch menu Thursday\n3. goldfish"])
    docs, counting = run(service, records, server, rag_multi_query="always", rag_top_k=1)
    assert counting.batches == [4] and counting.single == 0  # question + 3, one batch
    assert len(server.chats) == 1
    texts = [d.page_content for d in docs]
    assert "B4" in texts[0]  # the question's own best passage leads
    assert any("lasagne" in t for t in texts)  # an alternative's passage joins the union
    assert len(texts) == len(set(texts))
    assert {d.metadata["document"] for d in docs} <= {"handbook", "menu"}


def test_alternatives_are_cached_per_model_and_question(imported):
    service, records = imported
    server = FakeServer(reply=["car park level"])
    first, _ = run(service, records, server, rag_multi_query="always")
    again, _ = run(service, records, server, rag_multi_query="always")
    assert len(server.chats) == 1  # the second question was answered from the cache
    assert [d.id for d in again] == [d.id for d in first]
    key = AlternativesCache.key(MODEL, "q", 3)
    other = ServedModel(name="hr", gguf_path=Path("/models/other.gguf"))
    assert AlternativesCache.key(other, "q", 3) != key  # a re-created model starts afresh


def test_adaptive_skips_the_model_when_the_question_finds_a_close_passage(imported):
    service, records = imported
    server = FakeServer(reply=["lunch menu Thursday"])
    docs, counting = run(
        service, records, server, rag_multi_query="adaptive", rag_adaptive_distance=2.0
    )
    assert server.chats == [] and counting.batches == [1]
    assert "B4" in docs[0].page_content
    docs, counting = run(
        service, records, server, rag_multi_query="adaptive", rag_adaptive_distance=0.0
    )
    assert len(server.chats) == 1 and counting.batches == [1, 1]  # unsure: alternatives asked
    assert "B4" in docs[0].page_content


def test_never_and_zero_alternatives_search_the_question_only(imported):
    service, records = imported
    for settings in ({"rag_multi_query": "never"}, {"rag_alternative_queries": 0}):
        server = FakeServer()
        docs, counting = run(service, records, server, **settings)
        assert server.chats == [] and counting.batches == [1]
        assert "B4" in docs[0].page_content


def test_search_is_limited_to_the_requested_documents(imported):
    service, records = imported
    menu_only = [r for r in records if r.name == "menu"]
    docs, _ = run(service, menu_only, FakeServer(reply=["car park"]), rag_multi_query="always")
    assert docs and {d.metadata["document"] for d in docs} == {"menu"}


def test_multi_query_setting_is_validated():
    with pytest.raises(ValueError, match="rag_multi_query"):
        Settings(rag_multi_query="sometimes")
