"""api/db on SQLite and PostgreSQL: versioned migrations (also when several processes start
at once, and from a SQLite file that kept its version in PRAGMA user_version) and the
cross-process locks."""

import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from api.config import REPO_ROOT, Settings
from api.db import Database, db_lock
from api.db.locks import hold
from api.models.registry import VariantRegistry


def versions(db: Database) -> dict[str, int]:
    with db.connect() as conn:
        return dict(conn.exec_driver_sql("SELECT store, version FROM schema_versions").all())


def test_migrations_run_once_each_in_order_per_store(db_target):
    target = db_target("x")
    Database(target, store="x", migrations=["CREATE TABLE a (x TEXT)"])
    db = Database(
        target, store="x", migrations=["CREATE TABLE a (x TEXT)", "CREATE TABLE b (y TEXT)"]
    )
    other = Database(target, store="y", migrations=["CREATE TABLE c (z TEXT)"])
    with db.connect() as conn:  # a ran once (a second CREATE TABLE a would have failed)
        conn.exec_driver_sql("INSERT INTO b VALUES ('1')")
    assert versions(db)["x"] == 2 and versions(other)["y"] == 1


def test_a_failed_migration_leaves_the_version_and_the_tables_as_they_were(db_target):
    target = db_target("x")
    with pytest.raises(Exception, match="no_such_table"):
        Database(
            target, store="x", migrations=["CREATE TABLE a (x TEXT); SELECT * FROM no_such_table"]
        )
    db = Database(target, store="x", migrations=["CREATE TABLE a (x TEXT)"])  # a is not there yet
    assert versions(db)["x"] == 1


_START = """
import sys
from api.db import Database
Database(sys.argv[1], store="race", migrations=[
    "CREATE TABLE race (x TEXT)", "ALTER TABLE race ADD COLUMN y TEXT",
])
"""


def test_processes_starting_at_once_migrate_once(db_target):
    target = str(db_target("race"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _START, target], cwd=REPO_ROOT, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()  # no "already exists"
    assert versions(Database(target, store="race", migrations=[]))["race"] == 2


def test_a_registry_file_from_before_keeps_its_version(tmp_path):
    path = tmp_path / "registry.sqlite"
    with sqlite3.connect(path) as db:  # as api/sqlite.py left it: both migrations, version 2
        db.execute(
            "CREATE TABLE variants (name TEXT PRIMARY KEY, base_model TEXT NOT NULL, "
            "system_prompt TEXT, template TEXT, parameters TEXT NOT NULL DEFAULT '{}', "
            "adapter_path TEXT, gguf_path TEXT, created_at TEXT NOT NULL, lineage TEXT)"
        )
        db.execute(
            "INSERT INTO variants VALUES ('old', 'b', NULL, NULL, '{}', NULL, NULL, 't', NULL)"
        )
        db.execute("PRAGMA user_version = 2")
    registry = VariantRegistry(path)  # would fail re-adding the lineage column
    assert registry.get("old").base_model == "b"


def _settings(db_target, tmp_path) -> Settings:
    target = db_target("locks")
    return Settings(
        data_dir=tmp_path / "data", database_url=target if isinstance(target, str) else None
    )


def test_db_lock_excludes_other_holders_until_released(db_target, tmp_path):
    settings = _settings(db_target, tmp_path)
    order: list[str] = []
    with db_lock(settings, "ollama-import"):
        with db_lock(settings, "ollama-import", wait=False) as got:
            assert got is False  # held (a separate holder, even in this process)
        with db_lock(settings, "other", wait=False) as got:
            assert got is True  # names are independent

        def second() -> None:
            with db_lock(settings, "ollama-import"):
                order.append("second")

        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.3)
        order.append("first")
    waiter.join(timeout=10)
    assert order == ["first", "second"]


def test_a_lock_held_by_a_dead_process_is_free(db_target, tmp_path):
    settings = _settings(db_target, tmp_path)
    where = (
        settings.database_url.get_secret_value()
        if settings.database_url
        else settings.data_dir / "locks"
    )
    code = (
        "import sys, time\nfrom api.db.locks import hold\n"
        "with hold(sys.argv[1], 'x'):\n    print('held', flush=True)\n    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(where)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    with hold(where, "x", wait=False) as got:
        assert got is False
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while True:  # PostgreSQL notices the closed connection at once, but give it a moment
        with hold(where, "x", wait=False) as got:
            if got or time.monotonic() > deadline:
                break
        time.sleep(0.1)
    assert got is True


def test_step_processes_get_the_url_without_its_password(pg_url, monkeypatch):
    from api.db.engine import _with_password
    from api.jobs.store import JobStore

    with_password = pg_url.replace("postgres@", "postgres:s3cret@")  # trust auth ignores it
    shown = str(JobStore(with_password).path)
    assert "s3cret" not in shown and shown == pg_url
    monkeypatch.setenv("LLM_DATABASE_URL", with_password)
    assert _with_password(shown) == with_password  # the step takes it from its environment
    assert _with_password(shown.replace("/test_", "/other_")) == shown.replace("/test_", "/other_")


def test_a_model_held_on_one_replica_cannot_be_deleted_on_another(db_target, tmp_path):
    from api.errors import Conflict
    from api.models.in_use import ModelUse

    settings = _settings(db_target, tmp_path)
    a, b = ModelUse(settings), ModelUse(settings.model_copy(update={"replica_id": "b"}))
    with a.shared("hr"):  # an import on A
        with b.shared("hr"):  # another import, on B: both hold it
            pass
        with pytest.raises(Conflict, match="in use by an operation on another API replica"):
            with b.exclusive("hr", action="Delete it"):
                pass
        with b.exclusive("sales", action="Delete it"):  # another model is free
            pass
    with b.exclusive("hr", action="Delete it"):  # the import ended
        pass
