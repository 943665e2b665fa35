"""Which documents each model has, in SQLite (DATA_DIR/documents.sqlite).

A row is the commit point of an import: chunks in Chroma carry their import's id and
retrieval only reads ids listed here, so chunks of a failed or replaced import are
never seen even before they are cleaned up.

`pending` lists imports whose file and chunks may exist but must go: an import in
progress (until its commit), a replaced or deleted version (from the same transaction
that unlisted it) until its file and chunks are removed. An API killed in between leaves
rows here, and the next start removes what they name.
"""

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from api.sqlite import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    model       TEXT NOT NULL,
    name        TEXT NOT NULL,
    import_id   TEXT NOT NULL UNIQUE,
    file        TEXT NOT NULL,
    pages       INTEGER NOT NULL,
    chunks      INTEGER NOT NULL,
    size        INTEGER NOT NULL,
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


class DocumentCatalog:
    def __init__(self, path: Path):
        self.path = path
        self._connect = Database(path, [_SCHEMA]).connect

    def begin(self, *, model: str, import_id: str, file: str) -> None:
        """Note an import before its file and chunks are written (see `pending`)."""
        with self._connect() as db:
            db.execute("INSERT INTO pending VALUES (?, ?, ?)", (import_id, model, file))

    def put(self, record: DocumentRecord) -> DocumentRecord | None:
        """Insert or replace (model, name) in one transaction, which also ends the import's
        pending row and makes the replaced version pending; return the replaced record."""
        with self._connect() as db:
            old = db.execute(
                "SELECT * FROM documents WHERE model = ? AND name = ?", (record.model, record.name)
            ).fetchone()
            db.execute(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.model,
                    record.name,
                    record.import_id,
                    record.file,
                    record.pages,
                    record.chunks,
                    record.size,
                    record.imported_at,
                ),
            )
            db.execute("DELETE FROM pending WHERE import_id = ?", (record.import_id,))
            if old:
                _mark_pending(db, [old])
        return DocumentRecord(**dict(old)) if old else None

    def pending(self) -> list[tuple[str, str, str]]:
        """(model, import_id, file) of every import whose file and chunks must go."""
        with self._connect() as db:
            rows = db.execute("SELECT model, import_id, file FROM pending").fetchall()
        return [(r["model"], r["import_id"], r["file"]) for r in rows]

    def done(self, import_id: str) -> None:
        """The pending import's file and chunks are gone."""
        with self._connect() as db:
            db.execute("DELETE FROM pending WHERE import_id = ?", (import_id,))

    def get(self, model: str, name: str) -> DocumentRecord | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM documents WHERE model = ? AND name = ?", (model, name)
            ).fetchone()
        return DocumentRecord(**dict(row)) if row else None

    def of_model(self, model: str) -> list[DocumentRecord]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM documents WHERE model = ? ORDER BY name", (model,)
            ).fetchall()
        return [DocumentRecord(**dict(r)) for r in rows]

    def remove(self, model: str, name: str) -> DocumentRecord | None:
        with self._connect() as db:
            row = db.execute(
                "DELETE FROM documents WHERE model = ? AND name = ? RETURNING *", (model, name)
            ).fetchone()
            if row:
                _mark_pending(db, [row])
        return DocumentRecord(**dict(row)) if row else None

    def remove_all(self, model: str) -> list[DocumentRecord]:
        with self._connect() as db:
            rows = db.execute(
                "DELETE FROM documents WHERE model = ? RETURNING *", (model,)
            ).fetchall()
            _mark_pending(db, rows)
        return [DocumentRecord(**dict(r)) for r in rows]


def _mark_pending(db: sqlite3.Connection, rows: list[sqlite3.Row]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO pending VALUES (?, ?, ?)",
        [(r["import_id"], r["model"], r["file"]) for r in rows],
    )
