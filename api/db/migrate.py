"""Versioned schema migrations per store, applied at start-up.

A store's migrations are a list; number N (1-based) is applied once, in order, and recorded
in `schema_versions (store, version)` in the same transaction. A migration is SQL (statements
separated by `;`) for both dialects, or a dict from dialect name to SQL. Several processes
starting at once take the store's migration lock first, so each migration runs exactly once.

A SQLite file written before this table existed kept its version in `PRAGMA user_version`;
that number is its baseline (and one with neither is at 0: write early migrations with
CREATE ... IF NOT EXISTS so that they also apply to a file that predates tracking).
"""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

from api.db.locks import hold

if TYPE_CHECKING:
    from api.db.engine import Database

Migration = str | Mapping[str, str]

_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_versions (store TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


def migrate(db: "Database", store: str, migrations: Sequence[Migration]) -> int:
    """Bring `store` up to `len(migrations)`; return the version it was at."""
    where = db.sqlite_path.parent / "locks" if db.sqlite_path else db.target
    with hold(where, f"migrate-{store}"):
        with db.connect() as conn:
            conn.exec_driver_sql(_TABLE)
            start = _version(conn, store, db.dialect)
        for number, migration in enumerate(migrations, 1):
            if number <= start:
                continue
            script = migration if isinstance(migration, str) else migration[db.dialect]
            with db.connect() as conn:
                for statement in (s.strip() for s in script.split(";")):
                    if statement:
                        conn.exec_driver_sql(statement)
                _set_version(conn, store, number)
    return start


def _version(conn: Connection, store: str, dialect: str) -> int:
    row = conn.execute(
        text("SELECT version FROM schema_versions WHERE store = :s"), {"s": store}
    ).first()
    if row is not None:
        return int(row[0])
    baseline = (
        int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0) if dialect == "sqlite" else 0
    )
    conn.execute(
        text("INSERT INTO schema_versions (store, version) VALUES (:s, :v)"),
        {"s": store, "v": baseline},
    )
    return baseline


def _set_version(conn: Connection, store: str, number: int) -> None:
    conn.execute(
        text("UPDATE schema_versions SET version = :v WHERE store = :s"), {"s": store, "v": number}
    )
