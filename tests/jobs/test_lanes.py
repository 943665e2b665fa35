"""The local executor's lanes: one training job at a time, while in-process jobs (dataset
generation) run beside it instead of queueing behind it; and the default needs no Ray."""

import subprocess
import sys
import time

from api.config import REPO_ROOT, Settings
from api.jobs.kinds import JobKind
from api.jobs.runner import JobRunner
from api.jobs.store import JobStore
from tests.utils.runner import queued_job
from tests.utils.wait_step import WAIT_STEP, release


def until(check, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_dataset_job_runs_while_training_holds_the_local_lane(tmp_path):
    settings = Settings(data_dir=tmp_path, job_poll_seconds=0.1)
    store = JobStore(settings.jobs_db)
    first, second = queued_job(store, tmp_path), queued_job(store, tmp_path)
    seen = []

    def dataset_work(job, should_stop):
        seen.append([store.require(j.id).state for j in (first, second)])
        return {"report": "Generated nothing (lane test)."}

    runner = JobRunner(
        store,
        settings,
        kinds={"fine_tune": JobKind(train=WAIT_STEP), "dataset": JobKind(in_process=dataset_work)},
    )
    runner.start()
    try:
        until(lambda: any(e.type == "env" for e in store.events(first.id)), "the first step")
        dataset = queued_job(store, tmp_path, kind="dataset")
        runner.wake()
        until(lambda: store.require(dataset.id).state == "succeeded", "the dataset job")
        assert seen == [["running", "queued"]]  # one training at a time, the dataset beside it
        release(first.job_dir)
        release(second.job_dir)
        until(lambda: store.require(second.id).state == "succeeded", "the second job")
        assert store.require(first.id).state == "succeeded"
        env = [e for e in store.events(first.id) if e.type == "env"]
        assert env[0].data["cuda_visible_devices"] is None  # the API's own environment
    finally:
        runner.stop()


def test_the_default_executor_does_not_import_ray(tmp_path):
    code = (
        "import sys; from api.config import Settings; from api.jobs.runner import JobRunner; "
        "from api.jobs.store import JobStore; "
        f"s = Settings(data_dir={str(tmp_path)!r}); "
        "r = JobRunner(JobStore(s.jobs_db), s, kinds={}); r.start(); r.stop(); "
        "print(r.executor.name, 'ray' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["local", "False"]
