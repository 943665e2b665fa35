"""What /generate and /v1/chat/completions call when a request names documents."""

from api.config import Settings
from api.errors import InvalidInput
from api.generation import check_messages, resolve_options
from api.rag.answer import Grounded, ground
from api.rag.documents import DocumentService
from api.serving.base import ModelServer, ServedModel
from api.serving.options import GenerationOptions

DOCUMENTS_HELP = ("`documents`: names from GET /listDocuments to answer from; or "
                  "`all_documents: true` for all of the model's documents")


def ground_request(
    *, documents: DocumentService, server: ModelServer, model: ServedModel,
    messages: list[dict[str, str]], names: list[str] | None, all_documents: bool,
    options: GenerationOptions, settings: Settings,
) -> Grounded | None:
    """None when the request names no documents; otherwise the grounded messages and sources."""
    if names is None and not all_documents:
        return None
    if names is not None and all_documents:
        raise InvalidInput("Send either `documents` or `all_documents: true`, not both "
                           f"({DOCUMENTS_HELP}).")
    if names == []:
        raise InvalidInput(f"`documents` is empty ({DOCUMENTS_HELP}).")
    check_messages(messages, settings)
    if messages[-1]["role"] != "user":
        raise InvalidInput("With documents, the last message must be the user's question.")
    from api.rag.retrieve import retrieve  # LangChain and chromadb load on first use
    from api.rag.store import reachable

    records = documents.get(model=model.name, names=None if all_documents else names)
    with reachable(settings):
        passages = retrieve(store=documents.store, server=server, model=model,
                            question=messages[-1]["content"], records=records,
                            settings=settings)
    system = next((m["content"] for m in messages if m["role"] == "system"), model.system_prompt)
    max_tokens = resolve_options(model, options, settings)["max_tokens"]
    return ground(messages=messages, passages=passages, system_prompt=system,
                  max_tokens=max_tokens, settings=settings)
