"""Two replicas over one job store (SQLite file or PostgreSQL database): owners and leases,
take-over of expired leases only, idempotency keys across replicas, and the runner's
recovery never touching another live replica's job."""

import threading
import time

import pytest

from api.config import Settings
from api.errors import Conflict
from api.finetune.kinds import fine_tune_kinds
from api.jobs.runner import JobRunner
from api.jobs.store import JobStore


def running_job(store: JobStore, tmp_path, *, checkpoint: bool = True):
    job = store.create(model_name="m", base_model="b", spec={}, jobs_dir=tmp_path / "jobs")
    store.transition(job.id, "queued", allowed_from=("validating_files",), message="q")
    store.transition(job.id, "running", allowed_from=("queued",), message="r")
    if checkpoint:  # resumable
        (job.files.checkpoints / "checkpoint-2").mkdir(parents=True)
    return store.require(job.id)


def test_running_records_the_owner_and_a_lease_that_renew_extends(db_target, tmp_path):
    a = JobStore(db_target("jobs"), replica="a", lease_seconds=30)
    job = running_job(a, tmp_path)
    assert job.owner == "a" and job.lease_until > job.started_at
    time.sleep(0.01)
    assert a.renew() == 1
    assert a.require(job.id).lease_until > job.lease_until
    assert JobStore(db_target("jobs"), replica="b").renew() == 0  # not b's


def test_only_an_expired_lease_is_taken_over_and_by_one_replica(db_target, tmp_path):
    a = JobStore(db_target("jobs"), replica="a", lease_seconds=0.3)
    b = JobStore(db_target("jobs"), replica="b", lease_seconds=30)
    c = JobStore(db_target("jobs"), replica="c", lease_seconds=30)
    job = running_job(a, tmp_path)
    assert b.recoverable() == [] and not b.claim(job.id)  # a is alive
    assert [j.id for j in a.recoverable()] == [job.id]  # a's own, after a restart
    assert a.recoverable(own=False) == []
    time.sleep(0.4)  # a stopped renewing
    assert [j.id for j in b.recoverable(own=False)] == [job.id]
    won = []
    threads = [threading.Thread(target=lambda s=s: won.append(s.claim(job.id))) for s in (b, c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False, True]
    assert b.recoverable(own=False) == [] == c.recoverable(own=False)


def test_a_duplicate_idempotency_key_on_another_replica_is_the_first_job(db_target, tmp_path):
    a = JobStore(db_target("jobs"), replica="a")
    b = JobStore(db_target("jobs"), replica="b")
    first = a.create(
        model_name="m", base_model="b", spec={}, jobs_dir=tmp_path, idempotency_key="k1"
    )
    with pytest.raises(Conflict, match="Idempotency-Key 'k1' is already used"):
        b.create(model_name="m", base_model="b", spec={}, jobs_dir=tmp_path, idempotency_key="k1")
    assert b.by_idempotency_key("k1").id == first.id
    assert [j.id for j in b.list()] == [first.id]  # the failed insert left nothing


def runner(store: JobStore, tmp_path) -> JobRunner:
    settings = Settings(data_dir=tmp_path / "data", replica_id=store.replica)
    return JobRunner(store, settings, kinds=fine_tune_kinds())


def test_recovery_at_start_up_leaves_another_live_replicas_job_alone(db_target, tmp_path):
    a = JobStore(db_target("jobs"), replica="a", lease_seconds=30)
    b = JobStore(db_target("jobs"), replica="b", lease_seconds=30)
    a_job = running_job(a, tmp_path)
    b_job = running_job(b, tmp_path)
    b_lost = running_job(b, tmp_path, checkpoint=False)
    runner(b, tmp_path).recover()  # b restarted: its own jobs are recovered, a's not
    assert a.require(a_job.id).state == "running" and a.require(a_job.id).owner == "a"
    assert b.require(b_job.id).state == "queued"
    assert b.require(b_lost.id).state == "failed"


def test_an_expired_lease_is_recovered_without_a_restart(db_target, tmp_path):
    a = JobStore(db_target("jobs"), replica="a", lease_seconds=0.2)
    b = JobStore(db_target("jobs"), replica="b", lease_seconds=30)
    job = running_job(a, tmp_path)
    time.sleep(0.3)  # a died: no more heartbeats
    runner(b, tmp_path).recover(own=False)  # what b's heartbeat does
    moved = b.require(job.id)
    assert moved.state == "queued" and moved.owner == "b"
    assert "Replica 'a' stopped renewing" in b.events(job.id)[-1].message
