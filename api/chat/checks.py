"""Checks on a chat request, each run once: the messages, the options, and the fit of a
grounded prompt."""

from typing import Any

from api.config import Settings
from api.errors import InvalidInput
from api.serving.base import ServedModel
from api.serving.options import GenerationOptions

DEFAULT_MAX_TOKENS = 512


def check_messages(messages: list[dict[str, str]], settings: Settings) -> None:
    """The caller's messages: some user text, none over the length limit, valid Unicode."""
    if not messages:
        raise InvalidInput("No messages given: send at least one user message.")
    if not any(m["content"].strip() for m in messages if m["role"] == "user"):
        raise InvalidInput("The prompt is empty: send some text to answer.")
    check_lengths(messages, settings)
    for i, m in enumerate(messages):
        try:
            m["content"].encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone "\ud800" escape in the JSON
            raise InvalidInput(
                f"Message {i} contains an unpaired UTF-16 surrogate ({m['content'][exc.start]!r} "
                f"at character {exc.start}), which is not text; send valid Unicode."
            ) from None


def check_lengths(messages: list[dict[str, str]], settings: Settings) -> None:
    """No message over LLM_MAX_PROMPT_CHARS. Also run on a grounded prompt: the passages
    are fitted to the limit, but the instructions around a question near it may not fit."""
    too_long = [i for i, m in enumerate(messages) if len(m["content"]) > settings.max_prompt_chars]
    if too_long:
        raise InvalidInput(
            f"Message {too_long[0]} is longer than {settings.max_prompt_chars} characters; "
            "shorten it or raise LLM_MAX_PROMPT_CHARS."
        )


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
