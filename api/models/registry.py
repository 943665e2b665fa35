"""Variants persisted in SQLite (DATA_DIR/registry.sqlite)."""

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.errors import Conflict
from api.sqlite import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS variants (
    name          TEXT PRIMARY KEY,
    base_model    TEXT NOT NULL,
    system_prompt TEXT,
    template      TEXT,
    parameters    TEXT NOT NULL DEFAULT '{}',
    adapter_path  TEXT,
    gguf_path     TEXT,
    created_at    TEXT NOT NULL
)
"""
# where a fine-tuned model came from (api/finetune/lineage.py): its job, parent model and job
_LINEAGE = "ALTER TABLE variants ADD COLUMN lineage TEXT"


@dataclass(frozen=True)
class Variant:
    name: str
    base_model: str
    system_prompt: str | None = None
    template: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    adapter_path: str | None = None
    gguf_path: str | None = None
    created_at: str = ""
    lineage: dict[str, Any] | None = None


class VariantRegistry:
    def __init__(self, path: Path):
        self.path = path
        self._connect = Database(path, [_SCHEMA, _LINEAGE]).connect

    def add(self, variant: Variant) -> Variant:
        created = variant.created_at or datetime.now(UTC).isoformat(timespec="seconds")
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT INTO variants (name, base_model, system_prompt, template, "
                    "parameters, adapter_path, gguf_path, created_at, lineage) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        variant.name,
                        variant.base_model,
                        variant.system_prompt,
                        variant.template,
                        json.dumps(variant.parameters),
                        variant.adapter_path,
                        variant.gguf_path,
                        created,
                        json.dumps(variant.lineage) if variant.lineage else None,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"A model named {variant.name!r} already exists.") from exc
        return self.get(variant.name) or variant

    def get(self, name: str) -> Variant | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM variants WHERE name = ?", (name,)).fetchone()
        return _to_variant(row) if row else None

    def list(self) -> list[Variant]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM variants ORDER BY name").fetchall()
        return [_to_variant(r) for r in rows]

    def remove(self, name: str) -> bool:
        with self._connect() as db:
            return db.execute("DELETE FROM variants WHERE name = ?", (name,)).rowcount > 0


def _to_variant(row: sqlite3.Row) -> Variant:
    lineage = json.loads(row["lineage"]) if row["lineage"] else None
    return Variant(**{**dict(row), "parameters": json.loads(row["parameters"]), "lineage": lineage})
