"""POST /generate: one prompt in, one answer out (whole, or streamed as NDJSON)."""

import json
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.chat import Chat, ChatRequest, Source, StreamError
from api.deps import ChatDep
from api.problems import responses
from api.routes.streaming import thread_stream
from api.serving.options import GenerationOptions

router = APIRouter(tags=["generate"])


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(..., min_length=1, max_length=200, description="A base or variant name.")
    prompt: str = Field(..., description="The user's message.")
    system: str | None = Field(
        None, max_length=8000, description="System prompt for this request only."
    )
    options: GenerationOptions = Field(default_factory=GenerationOptions)
    stream: bool = Field(False, description="Stream NDJSON lines as tokens are produced.")
    documents: list[str] | None = Field(
        None,
        max_length=100,
        description="Answer from these documents of the model (names from "
        "GET /listDocuments); the answer's `sources` name the passages used.",
    )
    all_documents: bool = Field(
        False, description="Answer from all of the model's documents (instead of `documents`)."
    )


class GenerateResponse(BaseModel):
    model: str
    response: str
    done: bool = True
    done_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    sources: list[Source] = Field(
        default_factory=list, description="Passages the answer was given, with documents."
    )
    warnings: list[str] = Field(
        default_factory=list, description="E.g. retrieved context trimmed to fit the window."
    )


def _ndjson(chat: Chat) -> Iterator[str]:
    model, extra = chat.model, chat.grounding_fields()
    for event in chat.events():
        if isinstance(event, StreamError):  # after the status line: in-band, as Ollama does
            yield json.dumps({"model": model, "error": event.message, "done": True}) + "\n"
            return
        line: dict[str, object] = {"model": model, "response": event.text, "done": False}
        if event.finish_reason is not None:
            line.update(
                done=True,
                done_reason=event.finish_reason,
                prompt_tokens=event.prompt_tokens,
                completion_tokens=event.completion_tokens,
                **extra,
            )
        yield json.dumps(line) + "\n"


@router.post(
    "/generate",
    response_model=GenerateResponse,
    responses={
        200: {
            "content": {"application/x-ndjson": {}},
            "description": "JSON, or NDJSON lines when `stream` is true.",
        },
        **responses(404, 503),
    },
)
def generate(body: GenerateRequest, chats: ChatDep) -> GenerateResponse | StreamingResponse:
    """Answer a prompt with a model, applying its system prompt and default options."""
    chat = chats.start(
        ChatRequest.from_prompt(
            model=body.model,
            prompt=body.prompt,
            system=body.system,
            options=body.options,
            documents=body.documents,
            all_documents=body.all_documents,
        )
    )
    if body.stream:
        return StreamingResponse(thread_stream(_ndjson(chat)), media_type="application/x-ndjson")
    text, last = chat.whole()
    return GenerateResponse(
        model=chat.model,
        response=text,
        done_reason=last.finish_reason,
        prompt_tokens=last.prompt_tokens,
        completion_tokens=last.completion_tokens,
        **chat.grounding_fields(),
    )
