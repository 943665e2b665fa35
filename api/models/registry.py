"""Variants persisted in SQLite (DATA_DIR/registry.sqlite) or the shared database (api/db)."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.exc import IntegrityError

from api.db import Database
from api.db.migrate import Migration
from api.errors import Conflict

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
_MIGRATIONS: list[Migration] = [_SCHEMA, _LINEAGE]
_COLUMNS = (
    "name",
    "base_model",
    "system_prompt",
    "template",
    "parameters",
    "adapter_path",
    "gguf_path",
    "created_at",
    "lineage",
)


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
    def __init__(self, target: str | Path):
        """`target`: the SQLite file or the database URL."""
        self.path = target
        self._connect = Database(target, store="registry", migrations=_MIGRATIONS).connect

    def add(self, variant: Variant) -> Variant:
        created = variant.created_at or datetime.now(UTC).isoformat(timespec="seconds")
        try:
            with self._connect() as db:
                db.execute(
                    text(
                        f"INSERT INTO variants ({', '.join(_COLUMNS)}) "
                        f"VALUES ({', '.join(':' + c for c in _COLUMNS)})"
                    ),
                    {
                        "name": variant.name,
                        "base_model": variant.base_model,
                        "system_prompt": variant.system_prompt,
                        "template": variant.template,
                        "parameters": json.dumps(variant.parameters),
                        "adapter_path": variant.adapter_path,
                        "gguf_path": variant.gguf_path,
                        "created_at": created,
                        "lineage": json.dumps(variant.lineage) if variant.lineage else None,
                    },
                )
        except IntegrityError as exc:  # the name's PRIMARY KEY, on either dialect
            raise Conflict(f"A model named {variant.name!r} already exists.") from exc
        return self.get(variant.name) or variant

    def get(self, name: str) -> Variant | None:
        with self._connect() as db:
            row = db.execute(text("SELECT * FROM variants WHERE name = :n"), {"n": name}).first()
        return _to_variant(row) if row else None

    def list(self) -> list[Variant]:
        with self._connect() as db:
            rows = db.execute(text("SELECT * FROM variants ORDER BY name")).all()
        return [_to_variant(r) for r in rows]

    def remove(self, name: str) -> bool:
        with self._connect() as db:
            return (
                db.execute(text("DELETE FROM variants WHERE name = :n"), {"n": name}).rowcount > 0
            )


def _to_variant(row: Row[Any]) -> Variant:
    d = dict(row._mapping)
    lineage = json.loads(d["lineage"]) if d["lineage"] else None
    return Variant(**{**d, "parameters": json.loads(d["parameters"]), "lineage": lineage})
