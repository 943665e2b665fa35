"""The job-kind table's rules (what runs, how an interrupted job recovers), the shared step
entry point, and the store's require/active/follow, without training anything."""

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from api.db import Database
from api.errors import NotFound
from api.finetune.kinds import EXPORT, TRAIN, fine_tune_kinds
from api.jobs import step
from api.jobs.kinds import JobKind
from api.jobs.store import JobStore


@pytest.fixture
def store(db_target) -> JobStore:
    return JobStore(db_target("jobs"))


def make_job(store: JobStore, tmp_path: Path, kind="fine_tune", spec=None):
    job = store.create(
        model_name="m",
        base_model="b",
        spec=spec or {"export": "merged"},
        jobs_dir=tmp_path / "jobs",
        kind=kind,
    )
    job.job_dir.mkdir(parents=True)
    return job


def test_a_training_job_resumes_only_from_a_checkpoint_or_after_training(store, tmp_path):
    kind = fine_tune_kinds()["fine_tune"]
    job = make_job(store, tmp_path)
    assert not kind.resumable(job) and not kind.trained(job)
    (job.files.checkpoints / "checkpoint-3").mkdir(parents=True)
    assert kind.resumable(job)
    (job.files.checkpoints / "checkpoint-3").rmdir()
    store.set_metrics(job.id, {"steps": 4})
    trained = store.require(job.id)
    assert kind.trained(trained) and kind.resumable(trained)


def test_export_and_in_process_kinds_always_start_again(store, tmp_path):
    job = make_job(store, tmp_path, kind="export")
    assert fine_tune_kinds()["export"].resumable(job)
    assert not fine_tune_kinds()["export"].trained(job)
    assert JobKind(in_process=lambda job, stop: {}).resumable(job)


def test_the_export_step_runs_only_when_the_spec_asks(store, tmp_path):
    kinds = fine_tune_kinds()
    assert (kinds["fine_tune"].train, kinds["fine_tune"].export) == (TRAIN, EXPORT)
    assert TRAIN.module == "api.finetune.recipe" and EXPORT.module == "api.finetune.export"
    assert kinds["fine_tune"].exports(make_job(store, tmp_path))
    assert not kinds["fine_tune"].exports(make_job(store, tmp_path, spec={"export": "none"}))
    assert not JobKind().exports(make_job(store, tmp_path))


def test_a_failed_step_writes_its_reason_and_cleans_up(store, tmp_path):
    job = make_job(store, tmp_path)
    seen, cleaned = [], []

    def fails(job_dir, step_store, resume):
        seen.append((job_dir, resume, step_store.require(job.id).id))
        raise ValueError("no adapter")

    with pytest.raises(ValueError):
        step.main(
            fails,
            description="test",
            on_failure=cleaned.append,
            argv=[str(job.job_dir), "--db", str(store.path), "--resume"],
        )
    assert seen == [(job.job_dir, True, job.id)]
    assert cleaned == [job.files]
    assert job.files.error.read_text() == "ValueError: no adapter"
    assert (
        step.main(
            lambda *a: None, description="test", argv=[str(job.job_dir), "--db", str(store.path)]
        )
        == 0
    )


def test_require_active_and_follow(store, tmp_path):
    with pytest.raises(NotFound, match=r"Job 'nope' not found; GET /jobs lists jobs\."):
        store.require("nope")
    job = make_job(store, tmp_path)
    assert [j.id for j in store.active()] == [job.id]
    assert [e.type for e in store.follow(job.id, follow=False)] == ["validating_files"]

    def finish() -> None:
        time.sleep(0.2)
        store.add_event(job.id, "progress", "step 1/1")
        store.transition(
            job.id, "cancelled", allowed_from=("validating_files",), message="Cancelled."
        )

    threading.Thread(target=finish).start()
    events = list(store.follow(job.id, after=1, poll_seconds=0.05))
    assert [e.type for e in events] == ["progress", "cancelled"]
    assert store.active() == []


def test_migrations_run_once_each_in_order(tmp_path):
    path = tmp_path / "x.sqlite"
    Database(path, store="x", migrations=["CREATE TABLE a (x)"])
    db = Database(path, store="x", migrations=["CREATE TABLE a (x)", "CREATE TABLE b (y)"])
    with db.connect() as conn:  # only b was new
        tables = {
            r[0]
            for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        assert tables == {"a", "b", "schema_versions"}
        assert conn.exec_driver_sql("SELECT store, version FROM schema_versions").all() == [
            ("x", 2)
        ]


def test_a_job_store_made_before_migrations_were_tracked_keeps_its_jobs(tmp_path):
    path = tmp_path / "jobs.sqlite"
    store = JobStore(path)
    job = make_job(store, tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 0")  # as the store left files before api/sqlite.py
    assert JobStore(path).require(job.id).id == job.id
