"""Multi-query retrieval: the model itself rewrites the question, each version is searched,
and the deduplicated union comes back, limited to the requested documents."""

import re
from operator import itemgetter

from langchain_classic.retrievers.multi_query import MultiQueryRetriever
from langchain_core.documents import Document
from langchain_core.output_parsers import BaseOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel

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
    search = store.collection(model.name).as_retriever(
        search_kwargs={"k": settings.rag_top_k, "filter": where}
    )
    n = settings.rag_alternative_queries
    if n == 0:
        return search.invoke(question)
    llm = ServedChatModel(
        server=server, served=model, options={"temperature": 0, "seed": 0, "max_tokens": 32 * n}
    )
    alternatives = QUERY_PROMPT.partial(n=str(n)) | llm | QueryLines(limit=n)
    # the question itself first, so its own best passages lead the deduplicated union
    queries = RunnableParallel(  # type: ignore[var-annotated]
        question=itemgetter("question"), alternatives=alternatives
    ) | RunnableLambda(
        lambda d: [d["question"], *(q for q in d["alternatives"] if q != d["question"])]  # type: ignore[arg-type, misc]
    )
    retriever = MultiQueryRetriever(
        retriever=search, llm_chain=queries, include_original=False, verbose=False
    )
    return retriever.invoke(question)
