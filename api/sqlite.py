"""The one SQLite set-up shared by the stores (jobs, variants, documents).

Each store opens a short-lived connection per operation (`with db.connect() as conn:`
commits on success, rolls back on error). `migrations` are SQL scripts applied in order
once per database file, tracked in `PRAGMA user_version`; write each so that it also runs
on a file created before it was tracked (CREATE ... IF NOT EXISTS).
"""

import sqlite3
from collections.abc import Sequence
from pathlib import Path


class Database:
    def __init__(self, path: Path, migrations: Sequence[str], *, wal: bool = False):
        """Create the file and its parent folder if needed and bring the schema up to date.
        `wal`: readers and writers in several processes at once (the job store)."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            if wal:
                db.execute("PRAGMA journal_mode=WAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(migrations, 1):
                if number > version:
                    db.executescript(script)
                    db.execute(f"PRAGMA user_version = {number}")

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        return db
