"""Faults done for real: the API is a uvicorn process that gets SIGKILLed in the middle of
training, a PDF import and an export, then restarted on the same data directory; a
Chroma server that stops under the service and comes back; and the llama-server children
(backend `llamaserver`): one SIGSEGVed mid-stream, one that cannot bind its port, a missing
binary. A GGUF that llama-server cannot load (503, then unavailable after three tries) is
in tests/serving/test_llama_server_app.py.

After each restart: no job is left running or exporting (it resumed, or failed with a
reason), no document is half-imported (the catalog, the files on disk and the chunks in
Chroma agree), no model is half-registered (registry rows and export files agree), no
partial file is left, and no child process of the killed API lives on.
"""

import json
import os
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path

import chromadb
import httpx
import psutil
import pytest

from api.config import REPO_ROOT
from api.jobs.store import JobStore
from tests.utils.api_process import ApiProcess, processes_using, wait_no_processes_using
from tests.utils.chroma import start_chroma_server
from tests.utils.jobs import wait_for
from tests.utils.pdfs import HANDBOOK, pdf_bytes, slow_pdf_bytes
from tests.utils.tiny_model import TINY, qa_csv

pytestmark = pytest.mark.faults

TRAIN = {
    "base_model": TINY,
    "batch_size": "4",
    "learning_rate": "0.01",
    "eval_rows": "2",
    "eval_max_new_tokens": "4",
}
ACTIVE = ("validating_files", "queued", "running", "exporting")
BIN = REPO_ROOT / "llama.cpp" / "bin"
HI = {"model": "smollm2-135m", "prompt": "Hi", "options": {"max_tokens": 3}}


@pytest.fixture
def api(tmp_path, tiny_models_dir):
    """api(**env) starts the service on tmp_path/data; every process is stopped at the end."""
    started: list[ApiProcess] = []

    def start(**env: str) -> ApiProcess:
        process = ApiProcess(tmp_path / "data", tiny_models_dir, **env).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def restart(api, killed: ApiProcess, **env: str) -> ApiProcess:
    """Start the API again on the dead one's data directory, after checking that nothing
    the killed API started still runs."""
    assert killed.proc is not None and killed.proc.poll() is not None
    left = wait_no_processes_using(killed.data_dir)
    assert left == [], f"processes of the killed API live on: {left}"
    return api(**env)


def events(client: httpx.Client, job_id: str) -> list[dict]:
    body = client.get(f"/jobs/{job_id}/events", params={"follow": "false"}).text
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def wait_until(condition, what: str, timeout: float = 180, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- the invariants


def partial_files(data_dir: Path) -> list[str]:
    """Upload, export and temporary leftovers anywhere in the data dir (Chroma's own
    store and SQLite's journals aside)."""
    odd = []
    for path in data_dir.rglob("*"):
        rel = path.relative_to(data_dir)
        if rel.parts[0] == "chroma":
            continue
        name = path.name
        if (
            name.endswith((".part", ".partial", ".tmp"))
            or name.startswith(("tmp", ".tmp"))
            or rel.parts[:2] == ("documents", ".incoming")
            and len(rel.parts) > 3  # a file in a replica's incoming dir
        ):
            odd.append(str(rel))
    return odd


def check_jobs_and_models(client: httpx.Client, data_dir: Path) -> None:
    jobs = client.get("/jobs").json()["data"]
    assert [j for j in jobs if j["status"] in ACTIVE] == []
    for job in jobs:
        if job["status"] == "failed":
            assert job["error"], job
    registry = data_dir / "registry.sqlite"
    rows = []
    if registry.exists():
        with sqlite3.connect(registry) as db:
            rows = db.execute("SELECT name, gguf_path, adapter_path FROM variants").fetchall()
    served = set()
    for name, gguf, adapter in rows:
        for path in (gguf, adapter):
            if path:
                assert Path(path).is_file(), f"variant {name} names a missing file {path}"
                served.add(Path(path).parent)
    listed = {m["name"] for m in client.get("/listModels").json()["data"]}
    assert {r[0] for r in rows} <= listed
    for export_dir in (data_dir / "jobs").glob("*/export"):
        assert export_dir in served, f"{export_dir} belongs to no registered model"


def check_documents(client: httpx.Client, data_dir: Path, model: str) -> dict[str, int]:
    """The catalog and the files on disk agree; returns {import id: chunks} to compare with
    Chroma once the API has stopped."""
    listed = client.get("/listDocuments", params={"model": model}).json()["data"]
    with sqlite3.connect(data_dir / "documents.sqlite") as db:
        rows = db.execute(
            "SELECT name, import_id, file, chunks FROM documents WHERE model = ?", (model,)
        ).fetchall()
        pending = db.execute("SELECT * FROM pending").fetchall()
    assert sorted(d["name"] for d in listed) == sorted(r[0] for r in rows)
    assert pending == []
    folder = data_dir / "documents" / model
    on_disk = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    assert on_disk == sorted(r[2] for r in rows)
    return {r[1]: r[3] for r in rows}


def chroma_chunks(chroma_path: Path, model: str) -> dict[str, int]:
    """{import id: chunks} in the embedded Chroma store (read after the API stopped)."""
    client = chromadb.PersistentClient(path=str(chroma_path))
    try:
        collection = client.get_collection(f"model-{model}-docs")
    except Exception:
        return {}
    counts: dict[str, int] = {}
    for metadata in collection.get(include=["metadatas"])["metadatas"]:
        counts[metadata["import_id"]] = counts.get(metadata["import_id"], 0) + 1
    return counts


def check_no_leftovers(process: ApiProcess, client: httpx.Client) -> None:
    check_jobs_and_models(client, process.data_dir)
    assert partial_files(process.data_dir) == []


# ---------------------------------------------------------------- (a) training


def test_kill_during_training_resumes_from_the_checkpoint(api):
    first = api()
    with first.client() as client:
        r = client.post(
            "/fine_tune_model",
            data={
                "model_name": "tuned",
                "export": "none",
                "max_steps": "12",
                "checkpoint_steps": "3",
                **TRAIN,
            },
            files={"train_file": ("train.csv", qa_csv(40), "text/csv")},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        job_dir = first.data_dir / "jobs" / job_id
        # past the first checkpoint, and the recipe process is training
        wait_until(
            lambda: client.get(f"/jobs/{job_id}").json()["progress"].get("step", 0) >= 4, "step 4"
        )
        assert processes_using(job_dir), "no training process to orphan"
    first.kill()
    killed_at = JobStore(first.data_dir / "jobs.sqlite").require(job_id).progress["step"]
    # and as if the kill had cut a checkpoint save short: weights begun, no trainer state
    assert wait_no_processes_using(first.data_dir) == []
    cut = job_dir / "checkpoints" / f"checkpoint-{killed_at + 1}"
    cut.mkdir(exist_ok=True)
    (cut / "adapter_model.safetensors").write_bytes(b"\0" * 64)

    second = restart(api, first)
    with second.client() as client:
        done = wait_for(client, job_id, ("succeeded", "failed", "cancelled"), timeout=240)
        assert done["status"] == "succeeded", done["error"]
        assert done["progress"]["step"] == 12
        after = events(client, job_id)
        restart_at = next(
            i for i, e in enumerate(after) if e["type"] == "queued" and "restarted" in e["message"]
        )
        steps = [
            e["data"]["step"]
            for e in after[restart_at:]
            if e["type"] == "progress" and "loss" in e["data"]
        ]
        assert 1 < steps[0] <= killed_at, (killed_at, steps)  # from the checkpoint, not step 1
        assert (job_dir / "adapter" / "adapter_model.safetensors").is_file()
        check_no_leftovers(second, client)


# ---------------------------------------------------------------- (b) PDF import


def _import_in_background(
    url: str, name: str, content: bytes, answers: list | None = None
) -> threading.Thread:
    """Send an import in a thread; its response (or transport error) goes to `answers`."""

    def send() -> None:
        try:
            answer = httpx.post(
                f"{url}/importDocument",
                data={"model": "hr"},
                timeout=300,
                files={"file": (name, content, "application/pdf")},
            )
        except httpx.TransportError as exc:
            answer = exc
        if answers is not None:
            answers.append(answer)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _big_pdf() -> bytes:
    """With 200-character chunks: ~700 of them, stored in two batches (512 + the rest)."""
    return pdf_bytes(
        [f"Page {i}. " + "The quick brown fox jumps over the lazy dog. " * 50 for i in range(60)]
    )


SMALL_CHUNKS = {"LLM_RAG_CHUNK_SIZE": "200", "LLM_RAG_CHUNK_OVERLAP": "0"}


def _chroma_rows(chroma_path: Path) -> int:
    """How many vectors the embedded store holds, read-only (the API is writing)."""
    try:
        with sqlite3.connect(f"file:{chroma_path / 'chroma.sqlite3'}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_during_pdf_import_leaves_no_half_imported_document(api):
    small, big = SMALL_CHUNKS, _big_pdf()
    first = api(**small)
    data = first.data_dir
    with first.client() as client:
        assert client.post("/createModel", json={"name": "hr"}).status_code == 201
        r = client.post(
            "/importDocument",
            data={"model": "hr"},
            files={"file": ("handbook.pdf", pdf_bytes(HANDBOOK), "application/pdf")},
        )
        assert r.status_code == 201, r.text
        kept = _chroma_rows(data / "chroma")
        assert kept > 0
        # 1: killed while the parser child process reads a PDF that takes minutes
        _import_in_background(first.url, "slow.pdf", slow_pdf_bytes())
        wait_until(
            lambda: any("api.rag.pdf_child" in p for p in processes_using(data)),
            "the PDF parser process",
        )
    first.kill()

    second = restart(api, first, **small)
    with second.client() as client:
        check_documents(client, data, "hr")
        assert partial_files(data) == []
        # 2: killed while the chunks of a big PDF are being embedded and stored
        _import_in_background(second.url, "big.pdf", big)
        wait_until(
            lambda: _chroma_rows(data / "chroma") > kept, "chunks of big.pdf in Chroma", timeout=240
        )
    second.kill()

    third = restart(api, second, **small)
    with third.client() as client:
        listed = client.get("/listDocuments", params={"model": "hr"}).json()
        assert [d["name"] for d in listed["data"]] == ["handbook.pdf"]
        committed = check_documents(client, data, "hr")
        check_no_leftovers(third, client)
        # and the service imports again
        r = client.post(
            "/importDocument",
            data={"model": "hr", "name": "menu.pdf"},
            files={"file": ("x.pdf", pdf_bytes(["Lasagne on Thursday."]), "application/pdf")},
        )
        assert r.status_code == 201, r.text
        committed = check_documents(client, data, "hr")
    third.stop()
    assert chroma_chunks(data / "chroma", "hr") == committed


# ---------------------------------------------------------------- (c) export


def test_kill_during_export_leaves_no_half_registered_model(api):
    first = api(LLM_EXPORT_SMOKE_MAX_TOKENS="8")
    with first.client() as client:
        r = client.post(
            "/fine_tune_model",
            data={
                "model_name": "exported",
                "export": "adapter",
                "max_steps": "4",
                "checkpoint_steps": "2",
                **TRAIN,
            },
            files={"train_file": ("train.csv", qa_csv(24), "text/csv")},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        job_dir = first.data_dir / "jobs" / job_id
        # killed while llama.cpp's converter (a grandchild of the API) writes the GGUF
        wait_until(
            lambda: any("convert_lora_to_gguf" in p for p in processes_using(job_dir)),
            "the GGUF converter",
            timeout=240,
            every=0.05,
        )
        assert (job_dir / "export.partial").is_dir()
    first.kill()

    second = restart(api, first, LLM_EXPORT_SMOKE_MAX_TOKENS="8")
    with second.client() as client:
        done = wait_for(client, job_id, ("succeeded", "failed", "cancelled"), timeout=240)
        # the tiny random model never stops talking, so the smoke test refuses it: the
        # export ran again to its end and then registered nothing
        assert done["status"] == "failed"
        assert done["error"].startswith("Export failed: Smoke test failed"), done["error"]
        after = events(client, job_id)
        restart_at = next(
            i for i, e in enumerate(after) if e["type"] == "queued" and "restarted" in e["message"]
        )
        # training had finished: it is not run again (no step past max_steps), only the export
        assert [e for e in after[restart_at:] if e["type"] in ("progress", "checkpoint")] == []
        assert [e["data"].get("step") for e in after[restart_at:] if e["type"] == "exporting"][
            -1
        ] == "adapter_convert"
        assert after[-1]["type"] == "error"
        assert done["metrics"]["steps"] == 4
        assert "exported" not in {m["name"] for m in client.get("/listModels").json()["data"]}
        assert not (job_dir / "export").exists() and not (job_dir / "export.partial").exists()
        check_no_leftovers(second, client)


# ---------------------------------------------------------------- (d) Chroma server down


def test_chroma_server_down_is_503_and_recovers_without_restart(api, tmp_path):
    chroma_dir = tmp_path / "chroma-server"
    chroma, chroma_url = start_chroma_server(chroma_dir)
    port = int(chroma_url.rsplit(":", 1)[1])
    service = api(LLM_CHROMA_URL=chroma_url, LLM_RAG_ALTERNATIVE_QUERIES="0", **SMALL_CHUNKS)
    stored = service.data_dir / "documents" / "hr"
    pdf = ("handbook.pdf", pdf_bytes(HANDBOOK), "application/pdf")
    ask = {
        "model": "hr",
        "prompt": "Which pets are allowed?",
        "documents": ["handbook.pdf"],
        "options": {"max_tokens": 4, "temperature": 0},
    }
    try:
        with service.client() as client:
            assert client.post("/createModel", json={"name": "hr"}).status_code == 201
            assert (
                client.post(
                    "/importDocument", data={"model": "hr"}, files={"file": pdf}
                ).status_code
                == 201
            )
            assert client.post("/generate", json=ask).status_code == 200

            # stopped while an import is under way (its PDF stored, its chunks being embedded)
            answers: list = []
            sending = _import_in_background(service.url, "big.pdf", _big_pdf(), answers)
            wait_until(lambda: len(list(stored.iterdir())) == 2, "big.pdf stored", every=0.05)
            chroma.terminate()
            chroma.wait(timeout=30)
            sending.join(timeout=300)
            r = answers[0]
            assert r.status_code == 503, r.text
            assert r.json()["detail"].startswith(f"Chroma at {chroma_url} is not reachable")

            r = client.post(
                "/importDocument", data={"model": "hr", "name": "again.pdf"}, files={"file": pdf}
            )
            assert r.status_code == 503, r.text
            assert r.json()["detail"].startswith(f"Chroma at {chroma_url} is not reachable")
            r = client.post("/generate", json=ask)
            assert r.status_code == 503, r.text
            assert r.json()["detail"].startswith(f"Chroma at {chroma_url} is not reachable")
            r = client.post(
                "/v1/chat/completions",
                json={
                    "model": "hr",
                    "messages": [{"role": "user", "content": "Pets?"}],
                    "documents": ["handbook.pdf"],
                    "max_tokens": 4,
                },
            )
            assert r.status_code == 503, r.text
            assert "is not reachable" in r.json()["error"]["message"]
            # the catalog needs no Chroma: listing answers, and nothing half-imported shows
            listed = client.get("/listDocuments", params={"model": "hr"}).json()
            assert [d["name"] for d in listed["data"]] == ["handbook.pdf"]
            r = client.delete("/deleteDocument", params={"model": "hr", "document": "nope.pdf"})
            assert r.status_code == 404

            chroma, _ = start_chroma_server(chroma_dir, port=port)  # back, same port and data
            r = client.post("/generate", json=ask)
            assert r.status_code == 200, r.text
            assert r.json()["sources"][0]["document"] == "handbook.pdf"
            r = client.post(
                "/importDocument", data={"model": "hr", "name": "again.pdf"}, files={"file": pdf}
            )
            assert r.status_code == 201, r.text
            committed = check_documents(client, service.data_dir, "hr")
            assert partial_files(service.data_dir) == []
        host, _, chroma_port = chroma_url.removeprefix("http://").partition(":")
        collection = chromadb.HttpClient(host=host, port=int(chroma_port)).get_collection(
            "model-hr-docs"
        )
        ids = [m["import_id"] for m in collection.get(include=["metadatas"])["metadatas"]]
        assert {i: ids.count(i) for i in set(ids)} == committed
    finally:
        chroma.terminate()
        chroma.wait(timeout=30)


# ---------------------------------------------------------------- (e) llama-server children


@pytest.fixture
def smol(tmp_path, base_models_dir):
    """Like `api`, on SmolLM2 (backend llamaserver, the default)."""
    started: list[ApiProcess] = []

    def start(**env: str) -> ApiProcess:
        process = ApiProcess(tmp_path / "data", base_models_dir, **env).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def _generate_lines(client: httpx.Client, max_tokens: int = 400):
    body = {
        "model": "smollm2-135m",
        "prompt": "Tell a long story about a lighthouse.",
        "stream": True,
        "options": {"max_tokens": max_tokens, "temperature": 1.0},
    }
    return client.stream("POST", "/generate", json=body)


def test_child_crash_mid_stream_then_api_killed_leaves_no_orphan(smol):
    """SIGSEGV of the llama-server child mid-stream: that stream ends with an error line, the
    API (same pid) answers the next request from a new child; then SIGKILL of the API: the
    child dies with it (PDEATHSIG), and a restarted API serves again."""
    service = smol()
    with service.client() as client:
        with _generate_lines(client) as stream:
            lines = stream.iter_lines()
            assert not json.loads(next(lines))["done"]
            child = client.get("/health").json()["server"]["children"][0]["pid"]
            os.kill(child, signal.SIGSEGV)
            rest = [json.loads(line) for line in lines if line]
        assert rest[-1]["done"] and "stopped (killed by SIGSEGV)" in rest[-1]["error"]
        r = client.post("/generate", json=HI)
        assert r.status_code == 200, r.text
        children = client.get("/health").json()["server"]["children"]
        assert [c["pid"] for c in children] != [child]
    assert service.proc is not None and service.proc.poll() is None  # the API lived on
    assert psutil.Process(children[0]["pid"]).name() == "llama-server"
    service.kill()
    again = restart(smol, service)  # checks that nothing works in the data dir any more
    with again.client() as client:
        r = client.post("/generate", json=HI)
        assert r.status_code == 200, r.text


def test_child_that_cannot_bind_its_port_is_503_with_its_log(smol, tmp_path):
    """A child that will not start (here: its port is taken) fails the request with a 503
    that quotes llama-server's own reason, and the API stays up."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    wrapper = tmp_path / "llama-server"  # the real binary, always on the taken port
    wrapper.write_text(
        f'#!/bin/sh\nexec {BIN / "llama-server"} "$@" --port {holder.getsockname()[1]}\n'
    )
    wrapper.chmod(0o755)
    try:
        service = smol(LLM_LLAMA_SERVER_PATH=str(wrapper))
        with service.client() as client:
            r = client.post("/generate", json=HI)
            assert r.status_code == 503, r.text
            assert int(r.headers["Retry-After"]) >= 1
            detail = r.json()["detail"]
            assert detail.startswith("Could not load 'smollm2-135m': llama-server exited"), detail
            assert "couldn't bind HTTP server socket" in detail
            assert str(tmp_path) not in detail  # paths on the serving host are scrubbed
            assert client.get("/health").status_code == 200
    finally:
        holder.close()


def test_a_missing_llama_server_is_503_saying_to_run_setup(make_client, tmp_path):
    client = make_client(llama_server_path=tmp_path / "llama-server")
    r = client.post("/generate", json=HI)
    assert r.status_code == 503, r.text
    assert r.json()["detail"].startswith("llama-server is missing")
    assert "run `make setup`" in r.json()["detail"]
