"""One engine per database per process, and `Database`: a store's handle on it.

SQLite: pysqlite's own transaction handling leaves DDL and SELECTs outside transactions;
the engine turns it off and emits BEGIN itself (SQLAlchemy's documented recipe), so that
`with db.connect() as conn:` is one real transaction on both dialects (commit on success,
rollback on error) and a migration with its version bump is atomic.
"""

import os
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from api.db.migrate import Migration

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def is_url(target: str | Path) -> bool:
    return isinstance(target, str) and "://" in target


def _without_password(url: URL) -> str:
    return url._replace(password=None).render_as_string(hide_password=False)  # (URL.set keeps it)


def _with_password(url: str) -> str:
    """A URL without a password (as the runner passes it to step processes, so that it never
    shows in `ps`) takes the password of LLM_DATABASE_URL when that names the same database."""
    parsed, configured = make_url(url), os.environ.get("LLM_DATABASE_URL")
    if parsed.password is not None or not configured:
        return url
    full = make_url(configured)
    if _without_password(full) == url:
        return full.render_as_string(hide_password=False)
    return url


def engine_for(target: str | Path, *, wal: bool = False) -> Engine:
    """The process's engine for a URL or a SQLite file (created on first use)."""
    if is_url(target):
        url = _with_password(str(target))
        if url.startswith("postgresql://"):  # psycopg 3, the driver installed
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    else:
        url = f"sqlite:///{Path(target)}"
    with _engines_lock:
        if url not in _engines:
            _engines[url] = _create(url, wal=wal)
        return _engines[url]


def _create(url: str, *, wal: bool) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    # A connection per operation, closed after it (as sqlite3.connect per call was): a pool
    # would keep every store file of every data dir this process ever opened open.
    engine = create_engine(url, connect_args={"timeout": 30}, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit transactions: BEGIN below
        if wal:  # readers and writers in several processes at once (the job store)
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


class Database:
    def __init__(
        self,
        target: str | Path,
        *,
        store: str,
        migrations: "Sequence[Migration]",
        wal: bool = False,
    ):
        """Open (creating the SQLite file and its folder if needed) and bring `store`'s
        tables up to date. `wal`: several processes write the SQLite file at once."""
        from api.db.migrate import migrate

        self.target = target
        self.sqlite_path: Path | None = None if is_url(target) else Path(target)
        if self.sqlite_path is not None:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = engine_for(target, wal=wal)
        self.dialect = self.engine.dialect.name  # "sqlite" or "postgresql"
        migrate(self, store, migrations)

    def connect(self) -> AbstractContextManager[Connection]:
        """`with db.connect() as conn:` one transaction, committed when the block ends."""
        return self.engine.begin()

    @property
    def shown(self) -> str:
        """The target as a step process gets it: the path, or the URL without password."""
        if self.sqlite_path is not None:
            return str(self.sqlite_path)
        return _without_password(make_url(str(self.target)))


def dispose(target: str | Path) -> None:
    """Close this process's pooled connections to `target` and forget its engine."""
    with _engines_lock:
        for url in [u for u in _engines if u == target or u == f"sqlite:///{target}"]:
            _engines.pop(url).dispose()
