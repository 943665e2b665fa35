"""A throwaway PostgreSQL 15 cluster for the session (initdb + postgres from the machine's
PostgreSQL, in a temp dir, on a free loopback port, trust auth), and fixtures on it:

- `postgres`: the cluster (session); `postgres.database()` makes a fresh empty database and
  returns its URL;
- `pg_url`: a fresh database for one test;
- `db_target`: parametrised over both dialects, `db_target("jobs")` is the store's SQLite
  file in tmp_path or the test's PostgreSQL URL (all stores in one database, as in
  production).

The server refuses to run as root: as root it runs as the `postgres` user (runuser).
"""

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from api.db.engine import dispose
from tests.utils.net import free_port


def _bin(name: str) -> str:
    for folder in (Path("/usr/lib/postgresql/15/bin"),):
        if (folder / name).is_file():
            return str(folder / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql-15)")
    return found


class PostgresCluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.port = free_port()
        self.admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._names = itertools.count(1)
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        data = self.dir / "data"
        subprocess.run(
            [*self._as, _bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
            + ["-E", "UTF8", "--locale=C", "--no-sync"],
            check=True,
            capture_output=True,
        )
        self.log = open(self.dir / "server.log", "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [*self._as, _bin("postgres"), "-D", str(data), "-p", str(self.port)]
            + ["-k", str(self.dir), "-c", "listen_addresses=127.0.0.1"]
            + ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
            + ["-c", "max_connections=300"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.admin, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        "PostgreSQL did not start: " + (self.dir / "server.log").read_text()
                    ) from None
                time.sleep(0.1)

    def database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(postgres: PostgresCluster) -> Iterator[str]:
    url = postgres.database()
    yield url
    dispose(url)  # this process's pooled connections to it


@pytest.fixture(params=["sqlite", "postgres"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Path | str]:
    if request.param == "sqlite":
        return lambda store: tmp_path / f"{store}.sqlite"
    url = request.getfixturevalue("pg_url")
    return lambda store: url
