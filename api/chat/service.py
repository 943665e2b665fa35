"""The chat use case: one request in (model, messages, options, documents), one reply out.

`/generate` and `/v1/chat/completions` both call `ChatService.start` and only translate
formats. The steps, each once: resolve the model; check the document choice and the
messages; find passages (when grounded); resolve the options; build the grounded prompt;
start the backend. The first chunk is produced inside `start`, so an error up to then
(bad input, a prompt over the context window, a model that will not load) is an HTTP
error; one after it reaches the stream as a `StreamError` event.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain

from api.chat.checks import check_lengths, check_messages, resolve_options
from api.chat.grounding import find_passages, grounded_prompt, wants_documents
from api.config import Settings
from api.errors import AppError
from api.generation import collect, with_system_prompt
from api.models.catalog import BaseCatalog
from api.models.registry import VariantRegistry
from api.models.service import resolve_model
from api.rag.answer import Grounded
from api.rag.documents import DocumentService
from api.serving.base import Chunk, ModelServer
from api.serving.options import GenerationOptions


@dataclass(frozen=True)
class ChatRequest:
    """What a surface asks for, in plain form (roles user/system/assistant)."""

    model: str
    messages: list[dict[str, str]]
    options: GenerationOptions = field(default_factory=GenerationOptions)
    documents: list[str] | None = None  # names to answer from
    all_documents: bool = False  # answer from all of the model's documents

    @classmethod
    def from_prompt(
        cls, *, model: str, prompt: str, system: str | None = None, **rest: object
    ) -> "ChatRequest":
        """One user prompt, after a per-request system prompt when one is given."""
        messages = [{"role": "user", "content": prompt}]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        return cls(model=model, messages=messages, **rest)  # type: ignore[arg-type]


@dataclass(frozen=True)
class StreamError:
    """The reply failed after it started: the surface reports it in-band."""

    message: str


# What a chat's stream yields: pieces of text, the last one with finish_reason and token
# counts (`Chunk`), or a `StreamError` that ends the stream.
Event = Chunk | StreamError


@dataclass
class Chat:
    """A started reply: the model's name, the grounding (when documents were asked for)
    and the chunks still to come."""

    model: str
    grounded: Grounded | None
    _chunks: Iterator[Chunk]

    def grounding_fields(self) -> dict[str, object]:
        """`sources` and `warnings` as JSON values; empty when the chat is not grounded."""
        if self.grounded is None:
            return {}
        return {
            "sources": [s.model_dump() for s in self.grounded.sources],
            "warnings": self.grounded.warnings,
        }

    def events(self) -> Iterator[Event]:
        """The chunks as they come; an error ends them with a `StreamError`."""
        try:
            yield from self._chunks
        except AppError as exc:  # the status line is gone: report in-band, as Ollama does
            yield StreamError(exc.detail)

    def whole(self) -> tuple[str, Chunk]:
        """The whole reply text and the final chunk; errors raise."""
        return collect(self._chunks)


@dataclass(frozen=True)
class ChatService:
    settings: Settings
    catalog: BaseCatalog
    registry: VariantRegistry
    server: ModelServer
    documents: DocumentService

    def start(self, request: ChatRequest) -> Chat:
        """Check the request, ground it when asked, and start the reply."""
        settings = self.settings
        model = resolve_model(catalog=self.catalog, registry=self.registry, name=request.model)
        grounding = wants_documents(request.documents, request.all_documents)
        messages = request.messages
        check_messages(messages, settings)
        passages = (
            find_passages(
                documents=self.documents,
                server=self.server,
                model=model,
                messages=messages,
                names=request.documents,
                settings=settings,
            )
            if grounding
            else None
        )
        options = resolve_options(model, request.options, settings)
        grounded = None
        if passages is not None:
            grounded = grounded_prompt(
                model=model,
                messages=messages,
                passages=passages,
                max_tokens=options["max_tokens"],
                settings=settings,
            )
            messages = grounded.messages
            check_lengths(messages, settings)
        chunks = self.server.chat(model, with_system_prompt(model, messages), options)
        first = next(chunks, None)
        return Chat(
            model=model.name,
            grounded=grounded,
            _chunks=chunks if first is None else chain([first], chunks),
        )
