"""Training data: detect the format, validate every row, normalise to chat messages, split.

Accepted shapes (one per file):
- CSV with `input`, `output` and optional `system` columns (names configurable);
- JSON (a list) or JSONL (one object per line) of
  - question/answer objects (`input`/`output` by default, keys configurable),
  - Alpaca (`instruction`, optional `input`, `output`, optional `system`),
  - chat `messages` (OpenAI/ChatML roles system/user/assistant),
  - ShareGPT `conversations` (`from`: system/human/gpt, `value`).
Every example becomes a list of messages ending with the assistant's answer. Problems are
collected for all rows and reported together, with 1-based row numbers.
"""

import csv
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from api.errors import InvalidInput

Messages = list[dict[str, str]]
MAX_COLUMNS = 64
MAX_FIELD_CHARS = 1_000_000  # one cell or message text; far beyond any max_len in tokens
MAX_LINE_CHARS = 4 * MAX_FIELD_CHARS  # one physical CSV line
MAX_HEADER_CHARS = 64 * 1024
MAX_REPORTED = 50
_SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
}


@dataclass(frozen=True)
class Upload:
    """An uploaded data file (training, evaluation or seed rows), read by `load_examples`."""

    filename: str
    content: bytes


@dataclass(frozen=True)
class Keys:
    question: str = "input"
    answer: str = "output"
    system: str = "system"


_NOT_TEXT = {
    b"%PDF-": "a PDF",
    b"PK\x03\x04": "a ZIP archive (.xlsx and .docx files are ZIPs)",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\xd0\xcf\x11\xe0": "an old Office document (.xls, .doc)",
}


def _decode(raw: bytes, label: str) -> str:
    """UTF-8 (with or without BOM), or UTF-16 when a BOM says so (Excel's "Unicode text")."""
    if not raw.strip():
        raise InvalidInput(f"{label} is empty: upload a file with at least one example.")
    kind = next((k for magic, k in _NOT_TEXT.items() if raw.startswith(magic)), None)
    if kind:
        raise InvalidInput(
            f"{label} is {kind}, not CSV, JSON or JSONL text; export the data "
            "as UTF-8 CSV or JSONL and upload that."
        )
    utf16 = raw.startswith((b"\xff\xfe", b"\xfe\xff"))
    try:
        text = raw.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        encoding = (
            "UTF-16 text (it starts with a UTF-16 byte-order mark)" if utf16 else "UTF-8 text"
        )
        raise InvalidInput(
            f"{label} is not {encoding}: invalid byte 0x{raw[exc.start]:02x} at "
            f"position {exc.start} (line {line}); it may be Latin-1 or "
            "Windows-1252. Save it as UTF-8 and upload it again."
        ) from exc
    if "\x00" in text:
        raise InvalidInput(
            f"{label} contains NUL characters: it is a binary file (or UTF-16 "
            "without a byte-order mark), not CSV, JSON or JSONL text. Save it as "
            "UTF-8 text and upload it again."
        )
    return text


def _lines(text: str, label: str) -> Iterator[str]:
    """Physical lines for the csv reader, none longer than MAX_LINE_CHARS: a row of millions
    of fields or one huge cell is refused before csv (or a copy of the line) holds it."""
    start, number = 0, 0
    while start < len(text):
        number += 1
        end = text.find("\n", start, start + MAX_LINE_CHARS)
        if end == -1 and len(text) - start > MAX_LINE_CHARS:
            raise InvalidInput(
                f"{label} line {number} is longer than {MAX_LINE_CHARS} "
                f"characters; at most {MAX_LINE_CHARS} per line and "
                f"{MAX_FIELD_CHARS} per field are accepted. Shorten that row "
                "(or check for an unclosed quote)."
            )
        end = len(text) if end == -1 else end + 1
        yield text[start:end]
        start = end


def _check_header_line(text: str, label: str) -> None:
    """A header names at most MAX_COLUMNS columns: refuse a longer first line unparsed."""
    end = text.find("\n", 0, MAX_HEADER_CHARS + 1)
    if end == -1 and len(text) > MAX_HEADER_CHARS:
        raise InvalidInput(
            f"{label}'s first line (the CSV header) is longer than "
            f"{MAX_HEADER_CHARS} characters; a header names at most "
            f"{MAX_COLUMNS} columns, such as input,output."
        )


def _records(text: str, filename: str, label: str) -> tuple[str, list[Any]]:
    """Parse the file into raw records; returns (container format, records)."""
    stripped = text.lstrip()
    if filename.lower().endswith(".csv") or not stripped.startswith(("[", "{")):
        csv.field_size_limit(MAX_FIELD_CHARS)
        _check_header_line(text, label)
        reader = csv.reader(_lines(text, label))
        try:
            header = next(reader)
            if len(header) > MAX_COLUMNS:
                raise InvalidInput(
                    f"{label} has {len(header)} columns; at most {MAX_COLUMNS} are accepted."
                )
            rows = [
                dict(zip(header, row, strict=False)) | {"__width__": len(row)} for row in reader
            ]
        except csv.Error as exc:
            raise InvalidInput(
                f"{label} is not valid CSV at line {reader.line_num} ({exc}); "
                f"fields may be at most {MAX_FIELD_CHARS} characters."
            ) from exc
        return "csv", [{"__header__": header}, *rows]
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{label} is not valid JSON: {exc}.") from exc
        except RecursionError:
            raise InvalidInput(
                f"{label} is nested too deeply to be training data; each "
                "example is one flat object."
            ) from None
        return "json", data
    records, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not valid JSON ({exc.msg})")
        except RecursionError:
            problems.append(f"line {number}: nested too deeply")
    if problems:
        raise InvalidInput(f"{label} has lines that are not JSON objects.", problems[:MAX_REPORTED])
    return "jsonl", records


def detect_format(record: Any, keys: Keys) -> str:
    if not isinstance(record, dict):
        return "unknown"
    if "messages" in record:
        return "chat"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if keys.question in record or keys.answer in record:
        return "qa"
    return "unknown"


def _surrogate(value: str) -> str | None:
    """Where a lone surrogate (a JSON "\\ud800" escape) sits, or None for real text."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{value[exc.start]!r} at character {exc.start}"
    return None


def _text(
    record: dict[str, Any], key: str, row: int, problems: list[str], required: bool = True
) -> str:
    value = record.get(key)
    if value is None:
        if required:
            problems.append(f"row {row}: missing {key!r}")
        return ""
    if not isinstance(value, str):
        problems.append(f"row {row}: {key!r} must be text, not {type(value).__name__}")
        return ""
    if len(value) > MAX_FIELD_CHARS:
        problems.append(
            f"row {row}: {key!r} is {len(value)} characters long; at most "
            f"{MAX_FIELD_CHARS} are accepted per field"
        )
        return ""
    if _surrogate(value):
        problems.append(
            f"row {row}: {key!r} contains an unpaired UTF-16 surrogate "
            f"({_surrogate(value)}), which is not text"
        )
        return ""
    if required and not value.strip():
        problems.append(f"row {row}: {key!r} is empty")
    return value


def _turns(
    turns: Any, row: int, problems: list[str], role_key: str, text_key: str, roles: dict[str, str]
) -> Messages:
    if not isinstance(turns, list) or not turns:
        problems.append(f"row {row}: expected a non-empty list of turns")
        return []
    messages: Messages = []
    for i, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict) or turn.get(role_key) not in roles:
            problems.append(
                f"row {row}, turn {i}: {role_key!r} must be one of {', '.join(sorted(roles))}"
            )
            continue
        content = turn.get(text_key)
        if not isinstance(content, str) or not content.strip():
            problems.append(f"row {row}, turn {i}: {text_key!r} is missing or empty")
            continue
        if len(content) > MAX_FIELD_CHARS:
            problems.append(
                f"row {row}, turn {i}: {text_key!r} is {len(content)} characters "
                f"long; at most {MAX_FIELD_CHARS} are accepted per field"
            )
            continue
        if _surrogate(content):
            problems.append(
                f"row {row}, turn {i}: {text_key!r} contains an unpaired UTF-16 "
                f"surrogate ({_surrogate(content)}), which is not text"
            )
            continue
        messages.append({"role": roles[turn[role_key]], "content": content})
    if messages and messages[-1]["role"] != "assistant":
        problems.append(f"row {row}: the last turn must be the assistant's answer")
    if messages and not any(m["role"] == "user" for m in messages):
        problems.append(f"row {row}: no user turn")
    return messages


def _example(fmt: str, record: Any, row: int, keys: Keys, problems: list[str]) -> Messages:
    if not isinstance(record, dict):
        problems.append(f"row {row}: expected an object, got {type(record).__name__}")
        return []
    if fmt == "chat":
        roles = {"system": "system", "user": "user", "assistant": "assistant"}
        return _turns(record.get("messages"), row, problems, "role", "content", roles)
    if fmt == "sharegpt":
        return _turns(record.get("conversations"), row, problems, "from", "value", _SHAREGPT_ROLES)
    if fmt == "alpaca":
        instruction = _text(record, "instruction", row, problems)
        extra = _text(record, "input", row, problems, required=False)
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        system = _text(record, "system", row, problems, required=False)
        answer = _text(record, "output", row, problems)
    else:
        user = _text(record, keys.question, row, problems)
        answer = _text(record, keys.answer, row, problems)
        system = _text(record, keys.system, row, problems, required=False)
    head = [{"role": "system", "content": system}] if system.strip() else []
    question = {"role": "user", "content": user}
    if fmt == "alpaca" and extra.strip():  # kept apart for prompt_format=alpaca's template
        question |= {"instruction": instruction, "input": extra}
    return [*head, question, {"role": "assistant", "content": answer}]


def load_examples(
    raw: bytes,
    *,
    filename: str,
    keys: Keys = Keys(),
    label: str = "train_file",
    max_rows: int = 100_000,
) -> tuple[str, list[Messages]]:
    """Parse and validate a whole file; returns (format name, examples) or raises InvalidInput."""
    text = _decode(raw, label)
    container, records = _records(text, filename, label)
    problems: list[str] = []
    if container == "csv":
        header = records.pop(0)["__header__"]
        # Alpaca's columns (instruction, optional input, output) unless the keys say otherwise
        csv_fmt = "alpaca" if keys == Keys() and {"instruction", "output"} <= set(header) else "qa"
        missing = [k for k in (keys.question, keys.answer) if k not in header]
        if missing and csv_fmt == "qa":
            raise InvalidInput(
                f"{label} is missing the column(s) {', '.join(map(repr, missing))}; found "
                f"{', '.join(repr(h[:40]) for h in header)}. Name the columns {keys.question!r} and "
                f"{keys.answer!r} (optional {keys.system!r}), or set question_key/answer_key."
            )
        for row, record in enumerate(records, start=1):
            if record.pop("__width__") != len(header):
                problems.append(f"row {row}: has a different number of fields than the header")
    if not isinstance(records, list) or not records:
        raise InvalidInput(f"{label} has no examples.")
    if len(records) > max_rows:
        raise InvalidInput(f"{label} has {len(records)} rows; at most {max_rows} are accepted.")
    fmt = csv_fmt if container == "csv" else detect_format(records[0], keys)
    if fmt == "unknown":
        raise InvalidInput(
            f"{label}: unknown format. Use CSV with {keys.question!r}/{keys.answer!r} columns, "
            "or JSON/JSONL objects with question/answer keys, Alpaca instruction/input/output, "
            "chat `messages`, or ShareGPT `conversations`."
        )
    examples = [_example(fmt, rec, row, keys, problems) for row, rec in enumerate(records, 1)]
    if problems:
        more = (
            f" (first {MAX_REPORTED} of {len(problems)} shown)"
            if len(problems) > MAX_REPORTED
            else ""
        )
        raise InvalidInput(
            f"{label} has {len(problems)} problem(s){more}; fix them and upload again.",
            problems[:MAX_REPORTED],
        )
    return f"{container}/{fmt}", examples


@dataclass(frozen=True)
class Split:
    train: list[Messages]
    validation: list[Messages]
    test: list[Messages]
    seed: int


def resolve_seed(seed: int) -> int:
    """-1 means "pick one": a random seed that is then recorded in the resolved spec."""
    return random.SystemRandom().randrange(2**31) if seed == -1 else seed


def split_examples(
    examples: list[Messages],
    *,
    train_size: float,
    seed: int,
    test_size: int | float | None = None,
) -> Split:
    """Shuffle with `seed` (-1: a random seed, recorded) and cut train / validation / test.

    What is not train is halved between validation (eval loss) and test (hold-out ROUGE),
    unless `test_size` (a row count, or a fraction of all rows) sets the test rows.
    """
    seed = resolve_seed(seed)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_train = max(1, min(len(examples) - 2, round(len(examples) * train_size)))
    n_val = max(1, (len(examples) - n_train) // 2)
    if test_size is not None:
        n_train, n_val = _cuts_with_test_size(len(examples), train_size, test_size)
    if len(examples) < 3:
        raise InvalidInput(
            "At least 3 examples are needed to split train/validation/test; "
            "add rows or upload an eval_file."
        )
    pick = [examples[i] for i in order]
    return Split(pick[:n_train], pick[n_train : n_train + n_val], pick[n_train + n_val :], seed)


def _cuts_with_test_size(total: int, train_size: float, test_size: int | float) -> tuple[int, int]:
    """(train, validation) row counts when `test_size` fixes the test rows."""
    n_test = test_size if isinstance(test_size, int) else max(1, round(total * test_size))
    if n_test > total - 2:
        raise InvalidInput(
            f"test_size={test_size} asks for {n_test} test rows out of {total}; at least one "
            "training and one validation row must remain. Lower test_size or add rows."
        )
    n_train = max(1, min(total - n_test - 1, round(total * train_size)))
    return n_train, total - n_train - n_test
