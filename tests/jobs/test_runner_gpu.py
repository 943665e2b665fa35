"""Before training on a GPU the runner asks the serving backend to unload its models."""

from pathlib import Path

import pytest

from api.config import Settings
from api.errors import Unavailable
from api.jobs.store import JobStore
from api.main import create_app
from tests.utils.runner import queued_job, runner_with


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs.sqlite")


def test_a_gpu_job_unloads_the_served_models_before_training(store, tmp_path):
    calls: list[str] = []

    def free_gpu() -> list[str]:
        calls.append("unload")
        return ["llama3.2:3b", "llmp/hr-bot:latest"]

    job = queued_job(store, tmp_path)
    runner_with(store, tmp_path, gpu=True, free_gpu=free_gpu, calls=calls)._run(job)
    assert calls == ["unload", "api.finetune.recipe"]
    assert store.get(job.id).state == "succeeded"
    [event] = [e for e in store.events(job.id) if e.type == "gpu"]
    assert event.message == (
        "Unloaded llama3.2:3b, llmp/hr-bot:latest from the serving backend to free GPU memory."
    )
    assert event.data == {"unloaded": ["llama3.2:3b", "llmp/hr-bot:latest"]}


def test_a_cpu_job_leaves_the_served_models_loaded(store, tmp_path):
    calls: list[str] = []
    job = queued_job(store, tmp_path)
    runner_with(
        store, tmp_path, gpu=False, free_gpu=lambda: calls.append("unload") or [], calls=calls
    )._run(job)
    assert calls == ["api.finetune.recipe"]
    assert not [e for e in store.events(job.id) if e.type in ("gpu", "warning")]


def test_an_export_job_does_not_unload(store, tmp_path):
    calls: list[str] = []
    job = queued_job(store, tmp_path, kind="export")
    runner = runner_with(
        store, tmp_path, gpu=True, free_gpu=lambda: calls.append("unload") or [], calls=calls
    )
    runner._run(job)
    assert calls == [] and store.get(job.id).state == "succeeded"


def test_an_unreachable_backend_is_a_warning_event_and_the_job_still_trains(
    store, tmp_path, caplog
):
    calls: list[str] = []

    def free_gpu() -> list[str]:
        raise Unavailable("Ollama is not reachable at http://ollama:11434 (listing loaded models).")

    job = queued_job(store, tmp_path)
    runner_with(store, tmp_path, gpu=True, free_gpu=free_gpu, calls=calls)._run(job)
    assert calls == ["api.finetune.recipe"]
    assert store.get(job.id).state == "succeeded"
    [warning] = [e for e in store.events(job.id) if e.type == "warning"]
    assert warning.message == (
        "Could not unload the served models before training; the GPU "
        "may be short of memory: Ollama is not reachable at "
        "http://ollama:11434 (listing loaded models)."
    )
    assert "could not unload the served models before training" in caplog.text


def test_the_app_unloads_through_ollama_only(tmp_path):
    from fastapi.testclient import TestClient

    from tests.utils.net import free_port

    ollama = Settings(
        data_dir=tmp_path / "a",
        backend="ollama",
        ollama_url=f"http://127.0.0.1:{free_port()}",
        ollama_retries=0,
    )
    with TestClient(create_app(ollama)) as client:
        state = client.app.state
        assert state.runner.free_gpu == state.server.unload_all
    with TestClient(create_app(Settings(data_dir=tmp_path / "b"))) as client:
        assert client.app.state.runner.free_gpu is None  # the embedded backend: nothing to do
