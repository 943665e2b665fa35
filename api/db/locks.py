"""Named locks that hold across processes and, on PostgreSQL, across API replicas.

PostgreSQL: a session advisory lock (`pg_advisory_lock`, keyed by a stable 64-bit hash of
the name) on a connection held for the lock's life; a replica that dies loses its connection
and with it the lock. SQLite (one host): `flock` on a file per name in a `locks` folder; the
kernel drops it with the process, and separate opens exclude each other within one process
too (threads).
"""

import fcntl
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from api.db.engine import engine_for, is_url

if TYPE_CHECKING:
    from api.config import Settings


def lock_key(name: str) -> int:
    """The name's advisory-lock key: the first 8 bytes of its sha256, as a signed bigint."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def hold(
    target: str | Path,
    name: str,
    *,
    wait: bool = True,
    once: bool = False,
    shared: bool = False,
) -> Iterator[bool]:
    """Hold lock `name` in `target` (a database URL, or a folder for lock files) for the
    block. With `wait=False` the block runs at once and gets False when another holder has
    it (nothing is held then); otherwise it waits and gets True. `once`: a name that is
    never waited for again once released (an import id): its lock file goes at release.
    `shared`: any number of shared holders at once, excluding the exclusive ones."""
    if is_url(target):
        with _advisory(str(target), name, wait=wait, shared=shared) as held:
            yield held
    else:
        with _flock(Path(target), name, wait=wait, once=once, shared=shared) as held:
            yield held


@contextmanager
def _advisory(url: str, name: str, *, wait: bool, shared: bool) -> Iterator[bool]:
    key, mode = lock_key(name), "_shared" if shared else ""
    with engine_for(url).connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if wait:
            conn.execute(text(f"SELECT pg_advisory_lock{mode}(:k)"), {"k": key})
            held = True
        else:
            try_lock = text(f"SELECT pg_try_advisory_lock{mode}(:k)")
            held = bool(conn.execute(try_lock, {"k": key}).scalar())
        try:
            yield held
        finally:
            if held:
                conn.execute(text(f"SELECT pg_advisory_unlock{mode}(:k)"), {"k": key})


@contextmanager
def _flock(folder: Path, name: str, *, wait: bool, once: bool, shared: bool) -> Iterator[bool]:
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80]
    path = folder / f"{safe}-{lock_key(name) & 0xFFFFFFFF:08x}.lock"
    with open(path, "a+b") as f:
        try:
            mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            fcntl.flock(f, mode | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            if once:
                path.unlink(missing_ok=True)
            fcntl.flock(f, fcntl.LOCK_UN)


def lock_target(settings: "Settings") -> str | Path:
    """Where the settings' locks live: LLM_DATABASE_URL, else DATA_DIR/locks."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return settings.data_dir / "locks"


@contextmanager
def db_lock(
    settings: "Settings",
    name: str,
    *,
    wait: bool = True,
    once: bool = False,
    shared: bool = False,
) -> Iterator[bool]:
    """Serialise `name` across every process (and replica) using these settings' store; see
    `hold` for `wait`, `once` and `shared`."""
    with hold(lock_target(settings), name, wait=wait, once=once, shared=shared) as held:
        yield held
