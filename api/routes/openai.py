"""OpenAI-compatible surface: GET /v1/models and POST /v1/chat/completions."""

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.chat import Chat, ChatRequest, Chunk, StreamError
from api.deps import CatalogDep, ChatDep, RegistryDep
from api.errors import InvalidInput
from api.models.service import list_models
from api.problems import responses
from api.routes.streaming import thread_stream
from api.serving.options import GenerationOptions, StopString, json_int

router = APIRouter(prefix="/v1", tags=["openai"])


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True)

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def as_plain(self) -> dict[str, str]:
        text = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True)

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    # Unknown OpenAI fields (user, logit_bias, ...) are accepted and ignored, as Ollama does.
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(..., min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=512)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: json_int(ge=1) | None = None  # type: ignore[valid-type]
    max_completion_tokens: json_int(ge=1) | None = None  # type: ignore[valid-type]
    stop: StopString | Annotated[list[StopString], Field(max_length=8)] | None = None
    seed: json_int(ge=-1, le=2**31 - 1) | None = None  # type: ignore[valid-type]
    n: json_int(ge=1, le=1) = Field(1, description="Only one choice is supported.")  # type: ignore[valid-type]
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Extensions: answer from the model's documents; the reply then carries `sources` and
    # `warnings` next to `choices` (in the last chunk when streaming).
    documents: list[str] | None = Field(None, max_length=100)
    all_documents: bool = False

    def options(self) -> GenerationOptions:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        try:
            return GenerationOptions(
                temperature=self.temperature,
                top_p=self.top_p,
                seed=self.seed,
                stop=stop,
                max_tokens=self.max_completion_tokens or self.max_tokens,
            )
        except ValueError as exc:
            raise InvalidInput(f"Invalid sampling options: {exc}") from exc


def _timestamp(iso: str) -> int:
    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return 0


@router.get("/models")
def read_models(catalog: CatalogDep, registry: RegistryDep) -> dict[str, object]:
    """List models in OpenAI's format."""
    data = [
        {
            "id": m.name,
            "object": "model",
            "created": _timestamp(m.created_at),
            "owned_by": "system" if m.kind == "base" else "user",
        }
        for m in list_models(catalog=catalog, registry=registry)
    ]
    return {"object": "list", "data": data}


def _usage(last: Chunk) -> dict[str, int]:
    prompt, completion = last.prompt_tokens or 0, last.completion_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _sse(chat: Chat, include_usage: bool) -> Iterator[str]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": chat.model,
    }
    extra = chat.grounding_fields()

    def frame(delta: dict[str, str], finish: str | None, **extra: object) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**base, 'choices': [choice], **extra})}\n\n"

    yield frame({"role": "assistant", "content": ""}, None)
    for event in chat.events():
        if isinstance(event, StreamError):
            error = {"error": {"message": event.message, "type": "api_error"}}
            yield f"data: {json.dumps(error)}\n\n"
            break
        if event.text:
            yield frame({"content": event.text}, None)
        if event.finish_reason is not None:
            yield frame({}, event.finish_reason, **extra)
            if include_usage:
                usage = {**base, "choices": [], "usage": _usage(event)}
                yield f"data: {json.dumps(usage)}\n\n"
    yield "data: [DONE]\n\n"


@router.post("/chat/completions", responses=responses(404, 503))
def create_chat_completion(body: ChatCompletionRequest, chats: ChatDep) -> object:
    """Chat completion in OpenAI's format, streamed as server-sent events when asked."""
    chat = chats.start(
        ChatRequest(
            model=body.model,
            messages=[m.as_plain() for m in body.messages],
            options=body.options(),
            documents=body.documents,
            all_documents=body.all_documents,
        )
    )
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            thread_stream(_sse(chat, include_usage)), media_type="text/event-stream"
        )
    text, last = chat.whole()
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": chat.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": last.finish_reason,
            }
        ],
        "usage": _usage(last),
        **chat.grounding_fields(),
    }
