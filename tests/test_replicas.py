"""Two API replicas for real: two uvicorn processes with their own LLM_REPLICA_ID over one
PostgreSQL database, one shared data dir and one Chroma server, as a cluster deployment runs
them (docs/architecture.md). A job submitted on A is listed and followed on B, and a
duplicate Idempotency-Key on B returns it; restarting B while A trains leaves A's job and
A's document import in flight alone; cancel on B stops A's training process within seconds.

B polls its queue only every 60 s, so the job that A is woken for runs on A.
"""

import json
import threading
import time

import httpx
import pytest

from api.jobs.store import JobStore
from tests.utils.api_process import ApiProcess, processes_using, wait_no_processes_using
from tests.utils.chroma import chroma_server
from tests.utils.jobs import wait_until
from tests.utils.pdfs import slow_pdf_bytes
from tests.utils.tiny_model import TINY, qa_csv

OPERATIONS = 200_000  # text operators in the PDF: seconds of parsing
SLOW_JOB = {
    "model_name": "tuned",
    "base_model": TINY,
    "export": "none",
    "max_steps": "5000",  # cancelled long before
    "batch_size": "2",
    "checkpoint_steps": "1000",
    "eval_rows": "2",
    "eval_max_new_tokens": "4",
}


@pytest.fixture
def chroma(tmp_path):
    with chroma_server(tmp_path / "chroma") as url:
        yield url


def test_two_replicas_share_jobs_imports_and_cancel(tmp_path, tiny_models_dir, pg_url, chroma):
    data = tmp_path / "data"
    shared = {
        "LLM_DATABASE_URL": pg_url,
        "LLM_CHROMA_URL": chroma,
        "LLM_JOB_HEARTBEAT_SECONDS": "0.5",
        "LLM_JOB_LEASE_SECONDS": "5",
        "LLM_RAG_CHUNK_SIZE": "20000",  # few chunks to embed
        "LLM_RAG_CHUNK_OVERLAP": "0",
    }
    a = ApiProcess(data, tiny_models_dir, LLM_REPLICA_ID="a", **shared)
    b = ApiProcess(data, tiny_models_dir, LLM_REPLICA_ID="b", LLM_JOB_POLL_SECONDS="60", **shared)
    answers: list = []
    try:
        a.start()
        b.start()
        with a.client() as on_a, b.client() as on_b:
            assert on_a.post("/createModel", json={"name": "hr"}).status_code == 201
            # a job submitted on A; the same Idempotency-Key on B is the same job
            key = {"Idempotency-Key": "replicas-1"}
            files = {"train_file": ("train.csv", qa_csv(24), "text/csv")}
            first = on_a.post("/fine_tune_model", data=SLOW_JOB, files=files, headers=key)
            assert first.status_code == 202, first.text
            job_id = first.json()["id"]
            again = on_b.post("/fine_tune_model", data=SLOW_JOB, files=files, headers=key)
            assert again.status_code == 200 and again.json()["id"] == job_id
            assert [j["id"] for j in on_b.get("/jobs").json()["data"]] == [job_id]
            job_dir = data / "jobs" / job_id
            wait_until(
                lambda: on_b.get(f"/jobs/{job_id}").json()["status"] == "running",
                "the job running, seen on B",
            )
            trainer = wait_until(lambda: processes_using(job_dir), "the training process")
            store = JobStore(pg_url)
            assert store.require(job_id).owner == "a"
            # an import on A, still parsing the PDF while B restarts below
            threading.Thread(
                target=lambda: answers.append(
                    httpx.post(
                        f"{a.url}/importDocument",
                        data={"model": "hr"},
                        files={"file": ("slow.pdf", slow_pdf_bytes(OPERATIONS), "application/pdf")},
                        timeout=300,
                    )
                ),
                daemon=True,
            ).start()
            wait_until(
                lambda: any("api.rag.pdf_child" in p for p in processes_using(data)),
                "A parsing the PDF",
            )

            b.stop()  # B restarts while A trains and imports
            b.start()
            on_b.close()
            on_b = b.client()
            assert any("api.rag.pdf_child" in p for p in processes_using(data)), "parsed already"
            assert [p.parent.name for p in (data / "documents" / ".incoming").glob("*/*")] == ["a"]
            job = store.require(job_id)
            assert (job.state, job.owner) == ("running", "a")
            assert processes_using(job_dir) == trainer  # the same process trains on
            types = [e.type for e in store.events(job_id)]
            assert types.count("queued") == 1 and "error" not in types

            wait_until(lambda: answers, "the import on A", timeout=180)
            assert answers[0].status_code == 201, answers[0].text
            listed = on_b.get("/listDocuments", params={"model": "hr"}).json()["data"]
            assert [d["name"] for d in listed] == ["slow.pdf"]

            body = on_b.get(f"/jobs/{job_id}/events", params={"follow": "false"}).text
            followed = [json.loads(x[6:]) for x in body.splitlines() if x.startswith("data: ")]
            assert [e["type"] for e in followed][:3] == ["validating_files", "queued", "running"]

            cancelled_at = time.monotonic()
            assert on_b.post(f"/jobs/{job_id}/cancel").status_code == 200
            assert wait_no_processes_using(job_dir, timeout=15) == [], "A trains on"
            stopped_in = time.monotonic() - cancelled_at
            assert stopped_in < 10, stopped_in
            time.sleep(1)  # A's runner has seen the step end: the job stays cancelled
            done = on_a.get(f"/jobs/{job_id}").json()
            assert done["status"] == "cancelled", done
    finally:
        for process in (a, b):
            process.stop()
