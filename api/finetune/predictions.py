"""Per-row test predictions of a fine-tune or evaluate job: written by the step process,
served by GET /jobs/{id}/predictions as JSON Lines or CSV.

One record per test row: `row` (1-based, in the job's test set), `input` (the last user
turn), `reference` (the expected answer), `output` and `rougeL` (the tuned model, or the
model an evaluate job scores), `base_output` and `base_rougeL` (the base with the adapter
off, or an evaluate job's `compare_to` model; null without one).
"""

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from api.errors import NotFound

COLUMNS = ("row", "input", "reference", "output", "rougeL", "base_output", "base_rougeL")
Format = Literal["jsonl", "csv"]
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


def record(
    predictions: list[dict[str, Any]],
    index: int,
    messages: list[dict[str, str]],
    text: str,
    rouge_l: float,
    base: bool,
) -> None:
    """Add one model's answer to row `index` (the tuned pass first, then the base pass)."""
    while len(predictions) <= index:
        predictions.append({key: None for key in COLUMNS})
    row = predictions[index]
    user = [m["content"] for m in messages[:-1] if m["role"] == "user"]
    row.update(row=index + 1, input=user[-1] if user else "", reference=messages[-1]["content"])
    prefix = "base_" if base else ""
    row[f"{prefix}output"] = text
    row[f"{prefix}rougeL"] = round(rouge_l, 4)


def write_predictions(path: Path, predictions: list[dict[str, Any]]) -> None:
    """Written whole or not at all (a temporary file renamed)."""
    partial = path.with_suffix(".partial")
    partial.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
    partial.rename(path)


def read_predictions(path: Path, job_id: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise NotFound(
            f"Job {job_id} has no predictions: they are written when its test rows have been "
            "scored, at the end of a fine-tune or evaluate job (none when eval_rows is 0)."
        )
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def render(predictions: list[dict[str, Any]], fmt: Format) -> Iterator[str]:
    if fmt == "jsonl":
        for p in predictions:
            yield json.dumps(p, ensure_ascii=False) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for p in predictions:
        writer.writerow(p)
    yield buffer.getvalue()
