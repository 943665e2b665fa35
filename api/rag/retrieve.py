"""Multi-query retrieval: the model itself rewrites the question, every version is embedded in
one batch and searched in one vector query, and the deduplicated union comes back, limited to
the requested documents.

`rag_multi_query` chooses when the model is asked for alternatives: `always`, `never`, or
`adaptive` (only when the question's own best passage is further than
`rag_adaptive_distance`, i.e. when the plain search looks unsure). The alternatives are
written at temperature 0 with a fixed seed, so they are cached per (model, question).
"""

import re
import threading
from collections import OrderedDict
from typing import Any

from langchain_core.documents import Document
from langchain_core.output_parsers import BaseOutputParser
from langchain_core.prompts import ChatPromptTemplate

from api.config import Settings
from api.rag.catalog import DocumentRecord
from api.rag.llm import ServedChatModel
from api.rag.store import VectorStore
from api.serving.base import ModelServer, ServedModel

QUERY_PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "You are a helpful assistant."),
        (
            "human",
            "Write {n} different short search queries, one per line, that would find "
            "text answering this question: {question}",
        ),
    ]
)
_NUMBERING = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|query\s*\d*:)\s*", re.IGNORECASE)


class QueryLines(BaseOutputParser[list[str]]):
    """The model's reply as at most `limit` clean, distinct query lines (small models
    number them, repeat themselves or ramble: keep only what looks like a query)."""

    limit: int

    def parse(self, text: str) -> list[str]:
        lines = [_NUMBERING.sub("", line).strip().strip('"') for line in text.splitlines()]
        useful = [line[:300] for line in lines if len(line) >= 3]
        return list(dict.fromkeys(useful))[: self.limit]


class AlternativesCache:
    """Alternative queries by (model identity, question, n): least recently used dropped."""

    def __init__(self, size: int = 1024):
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], list[str]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(model: ServedModel, question: str, n: int) -> tuple[Any, ...]:
        # everything that changes what the model writes: a re-created variant with another
        # base, adapter or system prompt must not get the old one's alternatives
        return (
            model.name,
            str(model.gguf_path),
            str(model.adapter_path),
            model.system_prompt,
            model.ollama_base,
            question,
            n,
        )

    def get(self, key: tuple[Any, ...]) -> list[str] | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return list(self._items[key])

    def put(self, key: tuple[Any, ...], value: list[str]) -> None:
        with self._lock:
            self._items[key] = list(value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


ALTERNATIVES = AlternativesCache()


def alternative_queries(
    *, server: ModelServer, model: ServedModel, question: str, n: int
) -> list[str]:
    """At most `n` rewrites of `question` by the model itself (cached: temperature 0, seed 0)."""
    key = AlternativesCache.key(model, question, n)
    cached = ALTERNATIVES.get(key)
    if cached is not None:
        return cached
    llm = ServedChatModel(
        server=server, served=model, options={"temperature": 0, "seed": 0, "max_tokens": 32 * n}
    )
    chain = QUERY_PROMPT.partial(n=str(n)) | llm | QueryLines(limit=n)
    found = [q for q in chain.invoke({"question": question}) if q != question]
    ALTERNATIVES.put(key, found)
    return found


def _union(results: list[list[tuple[Document, float]]], k: int) -> list[Document]:
    """Each query's top `k` in query order, duplicates (same chunk) kept once."""
    seen: set[str] = set()
    out: list[Document] = []
    for hits in results:
        for doc, _ in hits[:k]:
            key = doc.id or doc.page_content
            if key not in seen:
                seen.add(key)
                out.append(doc)
    return out


def retrieve(
    *,
    store: VectorStore,
    server: ModelServer,
    model: ServedModel,
    question: str,
    records: list[DocumentRecord],
    settings: Settings,
) -> list[Document]:
    """Passages for `question` from `records` only: the question's own results first."""
    where = {"import_id": {"$in": [r.import_id for r in records]}}
    k = settings.rag_top_k
    n = settings.rag_alternative_queries
    mode = "never" if n == 0 else settings.rag_multi_query
    if mode == "always":
        queries = [
            question,
            *alternative_queries(server=server, model=model, question=question, n=n),
        ]
        return _union(store.search(model.name, queries, k=k, where=where), k)
    first = store.search(model.name, [question], k=k, where=where)
    if mode == "never" or not first[0] or first[0][0][1] <= settings.rag_adaptive_distance:
        return _union(first, k)
    alternatives = alternative_queries(server=server, model=model, question=question, n=n)
    if not alternatives:
        return _union(first, k)
    return _union(first + store.search(model.name, alternatives, k=k, where=where), k)
