"""Which documents each model has, in SQLite (DATA_DIR/documents.sqlite) or the shared
database (LLM_DATABASE_URL, api/db).

A row is the commit point of an import: chunks in Chroma carry their import's id and
retrieval only reads ids listed here, so chunks of a failed or replaced import are
never seen even before they are cleaned up.

`pending` lists imports whose file and chunks may exist but must go: an import in
progress (until its commit), a replaced or deleted version (from the same transaction
that unlisted it) until its file and chunks are removed. An API killed in between leaves
rows here, and the next start removes what they name. An import in progress holds the
lock `import-<id>` (api/rag/documents.py), so that no replica removes it meanwhile.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, text

from api.db import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    model       TEXT NOT NULL,
    name        TEXT NOT NULL,
    import_id   TEXT NOT NULL UNIQUE,
    file        TEXT NOT NULL,
    pages       INTEGER NOT NULL,
    chunks      INTEGER NOT NULL,
    size        BIGINT NOT NULL,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (model, name)
);
CREATE TABLE IF NOT EXISTS pending (
    import_id   TEXT PRIMARY KEY,
    model       TEXT NOT NULL,
    file        TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class DocumentRecord:
    model: str
    name: str
    import_id: str
    file: str
    pages: int
    chunks: int
    size: int
    imported_at: str


_FIELDS = ("model", "name", "import_id", "file", "pages", "chunks", "size", "imported_at")


class DocumentCatalog:
    def __init__(self, target: str | Path):
        """`target`: the SQLite file or the database URL."""
        self.path = target
        self._connect = Database(target, store="documents", migrations=[_SCHEMA]).connect

    def begin(self, *, model: str, import_id: str, file: str) -> None:
        """Note an import before its file and chunks are written (see `pending`)."""
        with self._connect() as db:
            _mark_pending(db, [{"import_id": import_id, "model": model, "file": file}])

    def put(self, record: DocumentRecord) -> DocumentRecord | None:
        """Insert or replace (model, name) in one transaction, which also ends the import's
        pending row and makes the replaced version pending; return the replaced record."""
        with self._connect() as db:
            old = db.execute(
                text("DELETE FROM documents WHERE model = :model AND name = :name RETURNING *"),
                {"model": record.model, "name": record.name},
            ).first()
            db.execute(
                text(
                    f"INSERT INTO documents ({', '.join(_FIELDS)}) "
                    f"VALUES ({', '.join(':' + f for f in _FIELDS)})"
                ),
                {f: getattr(record, f) for f in _FIELDS},
            )
            db.execute(text("DELETE FROM pending WHERE import_id = :i"), {"i": record.import_id})
            if old:
                _mark_pending(db, [old._mapping])
        return _record(old) if old else None

    def pending(self) -> list[tuple[str, str, str]]:
        """(model, import_id, file) of every import whose file and chunks must go."""
        with self._connect() as db:
            rows = db.execute(text("SELECT model, import_id, file FROM pending")).all()
        return [(r.model, r.import_id, r.file) for r in rows]

    def done(self, import_id: str) -> None:
        """The pending import's file and chunks are gone."""
        with self._connect() as db:
            db.execute(text("DELETE FROM pending WHERE import_id = :i"), {"i": import_id})

    def get(self, model: str, name: str) -> DocumentRecord | None:
        with self._connect() as db:
            row = db.execute(
                text("SELECT * FROM documents WHERE model = :model AND name = :name"),
                {"model": model, "name": name},
            ).first()
        return _record(row) if row else None

    def of_model(self, model: str) -> list[DocumentRecord]:
        """By name, in code point order on either dialect (not the database's collation)."""
        with self._connect() as db:
            rows = db.execute(
                text("SELECT * FROM documents WHERE model = :model"), {"model": model}
            ).all()
        return sorted((_record(r) for r in rows), key=lambda r: r.name)

    def remove(self, model: str, name: str) -> DocumentRecord | None:
        with self._connect() as db:
            row = db.execute(
                text("DELETE FROM documents WHERE model = :model AND name = :name RETURNING *"),
                {"model": model, "name": name},
            ).first()
            if row:
                _mark_pending(db, [row._mapping])
        return _record(row) if row else None

    def remove_all(self, model: str) -> list[DocumentRecord]:
        with self._connect() as db:
            rows = db.execute(
                text("DELETE FROM documents WHERE model = :model RETURNING *"), {"model": model}
            ).all()
            _mark_pending(db, [r._mapping for r in rows])
        return [_record(r) for r in rows]


def _record(row: Row[Any]) -> DocumentRecord:
    return DocumentRecord(**dict(row._mapping))


def _mark_pending(db: Connection, rows: Sequence[Any]) -> None:
    """Insert or replace the pending rows of `rows` (mappings with import_id, model, file)."""
    for r in rows:
        db.execute(text("DELETE FROM pending WHERE import_id = :i"), {"i": r["import_id"]})
        db.execute(
            text("INSERT INTO pending (import_id, model, file) VALUES (:i, :m, :f)"),
            {"i": r["import_id"], "m": r["model"], "f": r["file"]},
        )
