"""Turn a request (model name, messages, options) into a stream of reply chunks."""

from collections.abc import Iterator
from itertools import chain
from typing import Any

from api.config import Settings
from api.errors import InvalidInput
from api.serving.base import Chunk, ModelServer, ServedModel
from api.serving.options import GenerationOptions

DEFAULT_MAX_TOKENS = 512


def with_system_prompt(model: ServedModel, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Prepend the model's system prompt unless the caller sent a system message."""
    if model.system_prompt and not any(m["role"] == "system" for m in messages):
        return [{"role": "system", "content": model.system_prompt}, *messages]
    return messages


def resolve_options(
    model: ServedModel, requested: GenerationOptions, settings: Settings
) -> dict[str, Any]:
    """The model's defaults overlaid with the request's options, checked against limits."""
    options = {**model.options, **requested.set_values()}
    limit = settings.max_tokens_limit
    if options.get("max_tokens", 0) > limit:
        raise InvalidInput(
            f"max_tokens={options['max_tokens']} is over this server's limit of {limit}; "
            "ask for fewer tokens."
        )
    options.setdefault("max_tokens", min(DEFAULT_MAX_TOKENS, limit))
    return options


def check_messages(messages: list[dict[str, str]], settings: Settings) -> None:
    if not messages:
        raise InvalidInput("No messages given: send at least one user message.")
    if not any(m["content"].strip() for m in messages if m["role"] == "user"):
        raise InvalidInput("The prompt is empty: send some text to answer.")
    too_long = [i for i, m in enumerate(messages) if len(m["content"]) > settings.max_prompt_chars]
    if too_long:
        raise InvalidInput(
            f"Message {too_long[0]} is longer than {settings.max_prompt_chars} characters; "
            "shorten it or raise LLM_MAX_PROMPT_CHARS."
        )
    for i, m in enumerate(messages):
        try:
            m["content"].encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone "\ud800" escape in the JSON
            raise InvalidInput(
                f"Message {i} contains an unpaired UTF-16 surrogate ({m['content'][exc.start]!r} "
                f"at character {exc.start}), which is not text; send valid Unicode.") from None


def stream_chat(
    *,
    server: ModelServer,
    model: ServedModel,
    messages: list[dict[str, str]],
    options: GenerationOptions,
    settings: Settings,
) -> Iterator[Chunk]:
    """Start generating and return the chunks.

    The first chunk is produced before returning, so errors such as a prompt that does
    not fit the context window surface as an HTTP error rather than mid-stream.
    """
    check_messages(messages, settings)
    resolved = resolve_options(model, options, settings)
    chunks = server.chat(model, with_system_prompt(model, messages), resolved)
    first = next(chunks, None)
    return chunks if first is None else chain([first], chunks)


def collect(chunks: Iterator[Chunk]) -> tuple[str, Chunk]:
    """The whole reply text and the final chunk (finish reason, token counts)."""
    parts: list[str] = []
    last = Chunk(text="", finish_reason="stop", prompt_tokens=0, completion_tokens=0)
    for chunk in chunks:
        parts.append(chunk.text)
        if chunk.finish_reason is not None:
            last = chunk
    return "".join(parts), last
