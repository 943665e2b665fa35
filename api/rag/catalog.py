"""Which documents each model has, in SQLite (DATA_DIR/documents.sqlite).

A row is the commit point of an import: chunks in Chroma carry their import's id and
retrieval only reads ids listed here, so chunks of a failed or replaced import are
never seen even before they are cleaned up.
"""

import sqlite3
from dataclasses import dataclass
from pathlib import Path

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
)
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
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def put(self, record: DocumentRecord) -> DocumentRecord | None:
        """Insert or replace (model, name) in one transaction; return the replaced record."""
        with self._connect() as db:
            old = db.execute("SELECT * FROM documents WHERE model = ? AND name = ?",
                             (record.model, record.name)).fetchone()
            db.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (record.model, record.name, record.import_id, record.file, record.pages,
                        record.chunks, record.size, record.imported_at))
        return DocumentRecord(**dict(old)) if old else None

    def get(self, model: str, name: str) -> DocumentRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM documents WHERE model = ? AND name = ?",
                             (model, name)).fetchone()
        return DocumentRecord(**dict(row)) if row else None

    def of_model(self, model: str) -> list[DocumentRecord]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM documents WHERE model = ? ORDER BY name",
                              (model,)).fetchall()
        return [DocumentRecord(**dict(r)) for r in rows]

    def remove(self, model: str, name: str) -> DocumentRecord | None:
        with self._connect() as db:
            row = db.execute("DELETE FROM documents WHERE model = ? AND name = ? RETURNING *",
                             (model, name)).fetchone()
        return DocumentRecord(**dict(row)) if row else None

    def remove_all(self, model: str) -> list[DocumentRecord]:
        with self._connect() as db:
            rows = db.execute("DELETE FROM documents WHERE model = ? RETURNING *",
                              (model,)).fetchall()
        return [DocumentRecord(**dict(r)) for r in rows]
