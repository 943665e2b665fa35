"""Preference data (method `dpo` or `orpo`): a prompt, a chosen and a rejected answer per row.

Accepted shapes (one per file):
- CSV with `prompt`, `chosen`, `rejected` and an optional `system` column;
- JSON (a list) or JSONL of `{"prompt", "chosen", "rejected"}` objects (optional `system`);
- OpenAI's preference format: `{"input": {"messages": [...]}, "preferred_output":
  [{"role": "assistant", "content": ...}], "non_preferred_output": [...]}`.
Each row becomes chat messages whose last turn is the chosen answer, with the rejected answer
kept on that turn under `rejected`; so the split, the system prompt, the length check (of both
answers), the ROUGE evaluation (chosen as the reference) and the smoke test treat it as any
other row. Problems are reported together, with 1-based row numbers.
"""

from typing import Any

from api.errors import InvalidInput
from api.finetune.data import (
    MAX_REPORTED,
    Messages,
    _decode,
    _records,
    _text,
    _turns,
)

COLUMNS = ("prompt", "chosen", "rejected")
_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}


def _answer(value: Any, key: str, row: int, problems: list[str]) -> str:
    """OpenAI's `preferred_output`/`non_preferred_output`: one assistant message."""
    if (
        not isinstance(value, list)
        or len(value) != 1
        or not isinstance(value[0], dict)
        or value[0].get("role") != "assistant"
        or not isinstance(value[0].get("content"), str)
        or not value[0]["content"].strip()
    ):
        problems.append(
            f"row {row}: {key!r} must be a list of one assistant message with non-empty content"
        )
        return ""
    return value[0]["content"]


def _row(record: Any, row: int, problems: list[str]) -> Messages:
    if not isinstance(record, dict):
        problems.append(f"row {row}: expected an object, got {type(record).__name__}")
        return []
    openai = {"preferred_output", "non_preferred_output"} & record.keys()
    if openai or isinstance(record.get("input"), dict):  # OpenAI's preference format
        source = record.get("input")
        messages = source.get("messages") if isinstance(source, dict) else None
        if not isinstance(messages, list) or not messages:
            problems.append(f"row {row}: 'input' must be an object with a 'messages' list")
            return []
        # the prompt's turns, checked as a chat row whose last turn is the chosen answer
        chosen = _answer(record.get("preferred_output"), "preferred_output", row, problems)
        rejected = _answer(
            record.get("non_preferred_output"), "non_preferred_output", row, problems
        )
        turns = [*messages, {"role": "assistant", "content": chosen or "-"}]
        prompt = _turns(turns, row, problems, "role", "content", _ROLES)[:-1]
        if prompt and prompt[-1]["role"] != "user":
            problems.append(f"row {row}: the last input message must be the user's")
    else:
        system = _text(record, "system", row, problems, required=False)
        question = _text(record, "prompt", row, problems)
        chosen = _text(record, "chosen", row, problems)
        rejected = _text(record, "rejected", row, problems)
        head = [{"role": "system", "content": system}] if system.strip() else []
        prompt = [*head, {"role": "user", "content": question}]
    if chosen and chosen == rejected:
        problems.append(f"row {row}: the chosen and rejected answers are the same")
    return [*prompt, {"role": "assistant", "content": chosen, "rejected": rejected}]


def load_preferences(
    raw: bytes, *, filename: str, label: str = "train_file", max_rows: int = 100_000
) -> tuple[str, list[Messages]]:
    """Parse and validate a preference file; returns (format name, rows) or raises."""
    text = _decode(raw, label)
    container, records = _records(text, filename, label)
    problems: list[str] = []
    if container == "csv":
        header = records.pop(0)["__header__"]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise InvalidInput(
                f"{label} is missing the column(s) {', '.join(map(repr, missing))}; preference "
                "data (method dpo or orpo) needs 'prompt', 'chosen' and 'rejected' columns "
                f"(optional 'system'); found {', '.join(repr(h[:40]) for h in header)}."
            )
        for row, record in enumerate(records, start=1):
            if record.pop("__width__") != len(header):
                problems.append(f"row {row}: has a different number of fields than the header")
    if not isinstance(records, list) or not records:
        raise InvalidInput(f"{label} has no examples.")
    if len(records) > max_rows:
        raise InvalidInput(f"{label} has {len(records)} rows; at most {max_rows} are accepted.")
    rows = [_row(record, row, problems) for row, record in enumerate(records, start=1)]
    if problems:
        more = f" (first {MAX_REPORTED} shown)" if len(problems) > MAX_REPORTED else ""
        raise InvalidInput(
            f"{label} has {len(problems)} problem(s){more}; preference rows need a prompt, a "
            "chosen and a rejected answer. Fix them and upload again.",
            problems[:MAX_REPORTED],
        )
    openai = isinstance(records[0], dict) and "preferred_output" in records[0]
    return f"{container}/{'openai-preference' if openai else 'preference'}", rows


def with_rejected(rows: list[Messages]) -> list[Messages]:
    """The rows with the rejected answer as the last turn (for the length check)."""
    return [[*m[:-1], {"role": "assistant", "content": m[-1].get("rejected", "")}] for m in rows]
