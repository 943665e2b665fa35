"""`truncate: true`: rows longer than max_len are cut to fit instead of refused.

The answer is what the loss learns, so it is kept whole where possible: the longest text of
the prompt (a user turn's content, or an Alpaca row's `input`) loses its end first, turn by
turn; when the prompt cannot make room, the prompt stays and the answer is cut at its end. Lengths are
measured as lengths.too_long measures them (the job's template, the base's tokenizer), and a
row that still does not fit (a system prompt alone over max_len) is left for that check to
report.
"""

from pathlib import Path
from typing import Any

from api.finetune.data import Messages
from api.finetune.lengths import _load

_ROUNDS = 8  # re-measure after each cut: token boundaries move when text is cut


def _cut(tokenizer: Any, text: str, drop: int) -> str:
    """`text` without its last `drop` tokens (at least one token is kept)."""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    keep = max(1, len(encoding.ids) - drop)
    return text if keep >= len(encoding.ids) else text[: encoding.offsets[keep - 1][1]]


def _token_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def _shrink(messages: Messages, excess: int, tokenizer: Any) -> Messages:
    """One cut of `excess` tokens: from the longest prompt text, else from the answer."""
    rows = [dict(m) for m in messages]
    candidates = [
        (_token_count(tokenizer, m[key]), i, key)
        for i, m in enumerate(rows[:-1])
        if m["role"] == "user"
        for key in (("input",) if m.get("input") else ("content",))
    ]
    size, index, key = max(candidates, default=(0, -1, ""))
    room = sum(count - 1 for count, _, _ in candidates)  # each prompt text keeps one token
    if size > 1 and room >= excess:
        message = rows[index]
        message[key] = _cut(tokenizer, message[key], excess)
        if key == "input":  # the chat form of an Alpaca row carries the input too
            message["content"] = f"{message['instruction']}\n\n{message['input']}"
    else:
        rows[-1]["content"] = _cut(tokenizer, rows[-1]["content"], excess)
    return rows


def truncate_rows(
    examples: list[Messages], *, hf_dir: Path, max_len: int, template: str | None = None
) -> tuple[list[Messages], int]:
    """The rows cut to max_len tokens where they were longer, and how many were cut."""
    tokenizer, compiled = _load(hf_dir, template)

    def length(messages: Messages) -> int:
        text = compiled.render(  # type: ignore[attr-defined]
            messages=messages, add_generation_prompt=False, bos_token="", eos_token=""
        )
        return _token_count(tokenizer, text)

    out, cut = [], 0
    for messages in examples:
        excess = length(messages) - max_len
        if excess > 0:
            cut += 1
            for _ in range(_ROUNDS):
                messages = _shrink(messages, excess, tokenizer)
                excess = length(messages) - max_len
                if excess <= 0:
                    break
        out.append(messages)
    return out, cut
