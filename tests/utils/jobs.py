"""Fine-tuning jobs through the HTTP API: submit one with fast settings, wait, read events."""

import json
import time

from tests.utils.tiny_model import TINY, qa_csv

# A few training steps of the tiny model, no export: a job that ends in seconds.
FAST = {
    "base_model": TINY,
    "export": "none",
    "max_steps": "4",
    "batch_size": "4",
    "learning_rate": "0.01",
    "checkpoint_steps": "2",
    "eval_rows": "2",
    "eval_max_new_tokens": "4",
}


def submit(client, name="tuned", data=None, files=None, headers=None, **fields):
    form = {"model_name": name, **FAST, **fields}
    files = files if files is not None else {"train_file": ("train.csv", qa_csv(24), "text/csv")}
    return client.post("/fine_tune_model", data=form, files=files, headers=headers or {})


def wait_for(client, job_id, states, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {states}: {job}")


def events(client, job_id):
    with client.stream("GET", f"/jobs/{job_id}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = "".join(r.iter_text())
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def _no_jobs(client):
    """No job was created: none listed, nothing in the jobs directory."""
    assert client.get("/jobs").json()["count"] == 0
    jobs_dir = client.app.state.settings.jobs_dir
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir())


def wait_until(condition, what: str, timeout: float = 120.0):
    """Poll `condition` every 0.1 s until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
