"""The grounding step of a chat: which documents, their passages, and the grounded prompt.

Runs inside the chat use case (api/chat/service.py) after the messages were checked.
"""

from typing import TYPE_CHECKING

from api.config import Settings
from api.errors import InvalidInput
from api.rag.answer import Grounded, ground
from api.rag.documents import DocumentService
from api.serving.base import ModelServer, ServedModel

if TYPE_CHECKING:
    from langchain_core.documents import Document

DOCUMENTS_HELP = (
    "`documents`: names from GET /listDocuments to answer from; or "
    "`all_documents: true` for all of the model's documents"
)


def wants_documents(names: list[str] | None, all_documents: bool) -> bool:
    """Whether the request asks to be grounded; a contradictory or empty choice is a 422."""
    if names is None and not all_documents:
        return False
    if names is not None and all_documents:
        raise InvalidInput(
            f"Send either `documents` or `all_documents: true`, not both ({DOCUMENTS_HELP})."
        )
    if names == []:
        raise InvalidInput(f"`documents` is empty ({DOCUMENTS_HELP}).")
    return True


def find_passages(
    *,
    documents: DocumentService,
    server: ModelServer,
    model: ServedModel,
    messages: list[dict[str, str]],
    names: list[str] | None,
    settings: Settings,
) -> list["Document"]:
    """Passages of the chosen documents (all of the model's when `names` is None) for the
    last message, which must be the user's question."""
    if messages[-1]["role"] != "user":
        raise InvalidInput("With documents, the last message must be the user's question.")
    from api.rag.retrieve import retrieve  # LangChain and chromadb load on first use
    from api.rag.store import reachable

    records = documents.get(model=model.name, names=names)
    with reachable(settings):
        return retrieve(
            store=documents.store,
            server=server,
            model=model,
            question=messages[-1]["content"],
            records=records,
            settings=settings,
        )


def grounded_prompt(
    *,
    model: ServedModel,
    messages: list[dict[str, str]],
    passages: list["Document"],
    max_tokens: int,
    settings: Settings,
) -> Grounded:
    """The messages with the passages that fit put into the question, and their sources."""
    system = next((m["content"] for m in messages if m["role"] == "system"), model.system_prompt)
    return ground(
        messages=messages,
        passages=passages,
        system_prompt=system,
        max_tokens=max_tokens,
        settings=settings,
    )
