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


class VariantRegistry:
    def __init__(self, path: Path):
        self.path = path
        self._connect = Database(path, [_SCHEMA]).connect

    def add(self, variant: Variant) -> Variant:
        created = variant.created_at or datetime.now(UTC).isoformat(timespec="seconds")
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT INTO variants VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        variant.name,
                        variant.base_model,
                        variant.system_prompt,
                        variant.template,
                        json.dumps(variant.parameters),
                        variant.adapter_path,
                        variant.gguf_path,
                        created,
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
    return Variant(**{**dict(row), "parameters": json.loads(row["parameters"])})
