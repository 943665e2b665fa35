"""Fine-tuning jobs through the HTTP API, with real training runs of the tiny model."""

import json
import time

import pytest

from api.jobs.store import JobStore
from tests.utils.jobs import _no_jobs, events, submit, wait_for
from tests.utils.tiny_model import TINY, qa_csv


@pytest.fixture
def jobs_client(make_client, tiny_models_dir):
    return make_client(base_models_dir=tiny_models_dir, job_poll_seconds=0.1)


def test_job_runs_to_success_with_progress_metrics_and_events(jobs_client):
    r = submit(jobs_client)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running")
    assert job["hyperparameters"]["max_steps"] == 4
    # the resolved spec: this host's defaults filled in (no CUDA: plain LoRA, torch's AdamW)
    assert (job["hyperparameters"]["bits"], job["hyperparameters"]["optimizer"]) == (
        16,
        "adamw_torch",
    )
    dataset = job["progress"]["dataset"]
    precision = job["hyperparameters"]["mixed_precision"]
    assert dataset.pop("mixed_precision").startswith(f"{precision}: auto on the CPU")  # and why
    assert dataset.pop("attention").startswith("sdpa: ")  # no CUDA: no flash-attn; and why
    assert dataset == {
        "format": "csv/qa",
        "train_rows": 19,
        "validation_rows": 2,
        "test_rows": 3,
    }
    done = wait_for(jobs_client, job["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["step"] == 4
    assert {"loss", "learning_rate", "epoch", "eta_seconds"} <= done["progress"].keys()
    metrics = done["metrics"]
    assert metrics["perplexity"] > 1 and metrics["eval_loss"] > 0
    assert set(metrics["rouge"]["tuned"]) == {"rouge1", "rouge2", "rougeL"}
    assert metrics["rouge"]["test_rows"] == 2
    assert (metrics["bits"], metrics["optimizer"], metrics["device"]) == (16, "adamw_torch", "cpu")
    assert metrics["cpu_priority"].startswith("idle: SCHED_IDLE and autogroup nice 19")
    types = [e["type"] for e in events(jobs_client, job["id"])]
    assert types[:3] == ["validating_files", "queued", "running"]
    assert types[-1] == "succeeded"
    assert "progress" in types and "checkpoint" in types and "evaluating" in types
    assert types.index("evaluating") > max(i for i, t in enumerate(types) if t == "progress")
    listed = jobs_client.get("/jobs").json()
    assert [j["id"] for j in listed["data"]] == [job["id"]]


def test_events_after_seq_and_without_follow(jobs_client):
    job = submit(jobs_client).json()
    wait_for(jobs_client, job["id"], ("succeeded", "failed"))
    all_events = events(jobs_client, job["id"])
    later = jobs_client.get(
        f"/jobs/{job['id']}/events", params={"after": all_events[1]["seq"], "follow": False}
    ).text
    seqs = [json.loads(line[6:])["seq"] for line in later.splitlines() if line.startswith("data: ")]
    assert seqs == [e["seq"] for e in all_events[2:]]


def test_second_job_queues_behind_the_first_and_cancel_is_idempotent(jobs_client):
    first = submit(jobs_client, name="first", max_steps="400").json()
    second = submit(jobs_client, name="second").json()
    wait_for(jobs_client, first["id"], ("running",))
    assert jobs_client.get(f"/jobs/{second['id']}").json()["status"] == "queued"
    # cancel the queued one: it never runs
    r = jobs_client.post(f"/jobs/{second['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # cancel the running one: its process is stopped
    r = jobs_client.post(f"/jobs/{first['id']}/cancel")
    assert r.json()["status"] == "cancelled"
    again = jobs_client.post(f"/jobs/{first['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    time.sleep(1.0)
    for job_id in (first["id"], second["id"]):
        job = jobs_client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "cancelled"
        assert events(jobs_client, job_id)[-1]["type"] == "cancelled"
    assert not (jobs_client.app.state.settings.jobs_dir / second["id"] / "adapter").exists()
    deadline = time.monotonic() + 30
    while jobs_client.app.state.runner._handles and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not jobs_client.app.state.runner._handles  # the training process is gone


def test_cancel_between_start_and_process_spawn_still_stops_the_process(jobs_client, monkeypatch):
    """A cancel that lands after the job is marked running but before its process exists."""
    import subprocess

    from api.jobs.executors import process

    real_popen = subprocess.Popen
    spawned = []

    def popen_then_cancel(*args, **kwargs):
        # the cancel arrives while the runner has not yet published the process
        job_id = jobs_client.get("/jobs").json()["data"][0]["id"]
        jobs_client.post(f"/jobs/{job_id}/cancel")
        proc = real_popen(*args, **kwargs)
        spawned.append(proc)
        return proc

    monkeypatch.setattr(process.subprocess, "Popen", popen_then_cancel)
    job = submit(jobs_client, name="racy", max_steps="400").json()
    wait_for(jobs_client, job["id"], ("cancelled",))
    deadline = time.monotonic() + 30
    while not spawned or spawned[0].poll() is None:
        assert time.monotonic() < deadline, "the cancelled job's process kept running"
        time.sleep(0.1)
    assert jobs_client.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"


def test_cancelling_a_finished_job_is_409_and_changes_nothing(jobs_client):
    job = submit(jobs_client).json()
    wait_for(jobs_client, job["id"], ("succeeded",))
    r = jobs_client.post(f"/jobs/{job['id']}/cancel")
    assert r.status_code == 409
    assert jobs_client.get(f"/jobs/{job['id']}").json()["status"] == "succeeded"


def test_idempotency_key_returns_the_same_job(jobs_client):
    headers = {"Idempotency-Key": "upload-42"}
    first = submit(jobs_client, headers=headers)
    second = submit(jobs_client, headers=headers)
    assert first.status_code == 202 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert jobs_client.get("/jobs").json()["count"] == 1


def test_restart_resumes_a_running_job_from_its_checkpoint(
    jobs_client, make_client, tiny_models_dir
):
    job = submit(jobs_client).json()
    wait_for(jobs_client, job["id"], ("succeeded",))
    settings = jobs_client.app.state.settings
    store = JobStore(settings.jobs_db)
    # simulate an API that died mid-training: the row says running, checkpoints exist
    with store._connect() as db:
        db.exec_driver_sql(
            "UPDATE jobs SET state = 'running', finished_at = NULL, metrics = NULL WHERE id = ?",
            (job["id"],),
        )
    jobs_client.__exit__(None, None, None)
    restarted = make_client(base_models_dir=tiny_models_dir, job_poll_seconds=0.1)
    done = wait_for(restarted, job["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    messages = [e["message"] for e in events(restarted, job["id"])]
    assert "The API restarted during the job; it will resume from where it was." in messages
    assert "Resuming training from the last checkpoint." in messages


def test_restart_fails_a_running_job_without_checkpoint(tmp_path, make_client, tiny_models_dir):
    from api.config import Settings

    settings = Settings(data_dir=tmp_path / "data", base_models_dir=tiny_models_dir)
    store = JobStore(settings.jobs_db)
    job = store.create(model_name="lost", base_model=TINY, spec={}, jobs_dir=settings.jobs_dir)
    store.transition(job.id, "queued", allowed_from=("validating_files",), message="q")
    store.transition(job.id, "running", allowed_from=("queued",), message="r")
    client = make_client(base_models_dir=tiny_models_dir)
    failed = client.get(f"/jobs/{job.id}").json()
    assert failed["status"] == "failed"
    assert failed["error"] == (
        "The API restarted before the job saved a checkpoint; submit it again."
    )


def test_failed_training_reports_the_reason(jobs_client):
    job = submit(jobs_client, target_modules="no_such_proj").json()  # valid, but not in Llama
    done = wait_for(jobs_client, job["id"], ("succeeded", "failed"))
    assert done["status"] == "failed"
    assert done["error"].startswith(
        "Training failed: NoMatchingPeftModuleError: Target "
        "modules {'no_such_proj'} not found in the base model."
    )
    assert events(jobs_client, job["id"])[-1]["type"] == "error"


# ---------------------------------------------------------------- bad input: 4xx, no job


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "train_file is empty"),
        (b"question,reply\nQ,A\n", "missing the column(s) 'input', 'output'"),
        (b'[{"foo": 1}]', "unknown format"),
        ("input,output\nQ,\xe9t\xe9\n".encode("latin-1"), "not UTF-8 text"),
    ],
)
def test_bad_training_files_are_422(jobs_client, content, message):
    name = "t.json" if content.startswith(b"[") else "t.csv"
    r = submit(jobs_client, files={"train_file": (name, content, "text/csv")})
    assert r.status_code == 422
    assert message in r.json()["detail"]
    _no_jobs(jobs_client)


def test_rows_longer_than_max_len_are_listed(jobs_client):
    data = b"input,output\n" + b"short,answer\n" * 3 + b"long " * 300 + b",x\n"
    r = submit(jobs_client, max_len="64", files={"train_file": ("t.csv", data, "text/csv")})
    assert r.status_code == 422
    assert r.json()["errors"][0].startswith("row 4: ")
    assert "over max_len=64" in r.json()["errors"][0]
    _no_jobs(jobs_client)


@pytest.mark.parametrize(
    "field, value",
    [
        ("learning_rate", "-1"),
        ("lora_r", "0"),
        ("batch_size", "0"),
        ("epochs", "0"),
        ("train_size", "1.5"),
        ("bits", "3"),
        ("optimizer", "sgd"),
    ],
)
def test_absurd_hyperparameters_are_422(jobs_client, field, value):
    r = submit(jobs_client, **{field: value})
    assert r.status_code == 422
    assert field in r.json()["detail"]
    _no_jobs(jobs_client)


def test_all_bad_hyperparameters_reported_together(jobs_client):
    r = submit(jobs_client, learning_rate="-1", lora_r="0", batch_size="0")
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "learning_rate" in detail and "lora_r" in detail and "batch_size" in detail


def test_taken_name_and_unknown_base(jobs_client):
    r = submit(jobs_client, name=TINY)
    assert r.status_code == 409
    assert r.json()["detail"].startswith(f"A model named '{TINY}' already exists")
    r = submit(jobs_client, base_model="nope-7b")
    assert r.status_code == 404
    assert r.json()["detail"].startswith("Base model 'nope-7b' not found.")
    r = submit(jobs_client, name="Bad/Name")
    assert r.status_code == 422
    _no_jobs(jobs_client)


def test_same_name_as_an_active_job_is_409(jobs_client):
    first = submit(jobs_client, name="busy", max_steps="400").json()
    r = submit(jobs_client, name="busy")
    assert r.status_code == 409
    assert "Another active job is already producing 'busy'" in r.json()["detail"]
    jobs_client.post(f"/jobs/{first['id']}/cancel")


def test_oversized_training_file_is_413(make_client, tiny_models_dir):
    client = make_client(base_models_dir=tiny_models_dir, max_dataset_bytes=2048)
    r = submit(client, files={"train_file": ("t.csv", qa_csv(200), "text/csv")})
    assert r.status_code == 413
    assert "train_file is larger than the 2048-byte limit" in r.json()["detail"]


def test_unknown_job_is_404(jobs_client):
    assert jobs_client.get("/jobs/ftjob-nope").status_code == 404
    assert jobs_client.post("/jobs/ftjob-nope/cancel").status_code == 404
    assert jobs_client.get("/jobs/ftjob-nope/events").status_code == 404
