"""Helpers around a backend's reply, shared by the chat use case (api/chat/) and by jobs
that ask a model directly (a published model's smoke test, a teacher model)."""

from collections.abc import Iterator

from api.serving.base import Chunk, ServedModel


def with_system_prompt(model: ServedModel, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Prepend the model's system prompt unless the caller sent a system message."""
    if model.system_prompt and not any(m["role"] == "system" for m in messages):
        return [{"role": "system", "content": model.system_prompt}, *messages]
    return messages


def collect(chunks: Iterator[Chunk]) -> tuple[str, Chunk]:
    """The whole reply text and the final chunk (finish reason, token counts)."""
    parts: list[str] = []
    last = Chunk(text="", finish_reason="stop", prompt_tokens=0, completion_tokens=0)
    for chunk in chunks:
        parts.append(chunk.text)
        if chunk.finish_reason is not None:
            last = chunk
    return "".join(parts), last
