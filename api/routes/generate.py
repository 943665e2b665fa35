"""POST /generate: one prompt in, one answer out (whole, or streamed as NDJSON)."""

import json
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CatalogDep, DocumentsDep, RegistryDep, ServerDep, SettingsDep
from api.errors import AppError
from api.generation import collect, stream_chat
from api.models.service import resolve_model
from api.problems import responses
from api.rag.answer import Source
from api.rag.grounding import ground_request
from api.serving.base import Chunk
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
        None, max_length=100, description="Answer from these documents of the model (names from "
        "GET /listDocuments); the answer's `sources` name the passages used.")
    all_documents: bool = Field(
        False, description="Answer from all of the model's documents (instead of `documents`).")


class GenerateResponse(BaseModel):
    model: str
    response: str
    done: bool = True
    done_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    sources: list[Source] = Field(default_factory=list,
                                  description="Passages the answer was given, with documents.")
    warnings: list[str] = Field(default_factory=list,
                                description="E.g. retrieved context trimmed to fit the window.")


def _ndjson(model: str, chunks: Iterator[Chunk], extra: dict[str, object]) -> Iterator[str]:
    try:
        for chunk in chunks:
            line: dict[str, object] = {"model": model, "response": chunk.text, "done": False}
            if chunk.finish_reason is not None:
                line.update(done=True, done_reason=chunk.finish_reason,
                            prompt_tokens=chunk.prompt_tokens,
                            completion_tokens=chunk.completion_tokens, **extra)
            yield json.dumps(line) + "\n"
    except AppError as exc:  # the status line is gone: report in-band, as Ollama does
        yield json.dumps({"model": model, "error": exc.detail, "done": True}) + "\n"


@router.post("/generate", response_model=GenerateResponse,
             responses={200: {"content": {"application/x-ndjson": {}},
                              "description": "JSON, or NDJSON lines when `stream` is true."},
                        **responses(404, 503)})
def generate(
    body: GenerateRequest, settings: SettingsDep, catalog: CatalogDep, registry: RegistryDep,
    server: ServerDep, documents: DocumentsDep,
) -> GenerateResponse | StreamingResponse:
    """Answer a prompt with a model, applying its system prompt and default options."""
    model = resolve_model(catalog=catalog, registry=registry, name=body.model)
    messages = [{"role": "user", "content": body.prompt}]
    if body.system is not None:
        messages.insert(0, {"role": "system", "content": body.system})
    grounded = ground_request(documents=documents, server=server, model=model, messages=messages,
                              names=body.documents, all_documents=body.all_documents,
                              options=body.options, settings=settings)
    extra: dict[str, object] = {}
    if grounded is not None:
        messages = grounded.messages
        extra = {"sources": [s.model_dump() for s in grounded.sources],
                 "warnings": grounded.warnings}
    chunks = stream_chat(server=server, model=model, messages=messages, options=body.options,
                         settings=settings)
    if body.stream:
        return StreamingResponse(_ndjson(model.name, chunks, extra),
                                 media_type="application/x-ndjson")
    text, last = collect(chunks)
    return GenerateResponse(model=model.name, response=text, done_reason=last.finish_reason,
                            prompt_tokens=last.prompt_tokens,
                            completion_tokens=last.completion_tokens, **extra)
