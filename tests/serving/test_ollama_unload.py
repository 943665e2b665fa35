"""Unloading Ollama's models before a GPU job (/api/ps, then keep_alive 0), against the double."""

import httpx
import pytest

from api.errors import Unavailable
from tests.utils.net import free_port
from tests.utils.ollama_app import make_server


def loaded(double) -> list[str]:
    return [m["model"] for m in httpx.get(f"{double.url}/api/ps").json()["models"]]


def test_every_loaded_model_is_unloaded_with_keep_alive_0(server, double):
    a, b = double.pull("llama3.2:3b"), double.pull("qwen2.5:7b")
    double.pull("idle:1b")  # pulled but not in memory: left alone
    httpx.post(f"{double.url}/api/generate", json={"model": a})  # empty prompt: loads it
    httpx.post(f"{double.url}/api/generate", json={"model": b})
    assert loaded(double) == [a, b]

    assert server.unload_all() == [a, b]
    assert double.unloaded == [a, b] and loaded(double) == []
    sent = [body for body in double.calls("POST", "/api/generate") if body.get("keep_alive") == 0]
    assert [body["model"] for body in sent] == [a, b]
    assert all(not body.get("prompt") for body in sent)  # a prompt would generate instead


def test_a_chat_loads_a_model_and_unload_all_frees_it(server, double, base_gguf):
    from api.serving.base import ServedModel

    model = ServedModel(name="tiny", gguf_path=base_gguf)
    list(server.chat(model, [{"role": "user", "content": "x"}], {}))
    assert loaded(double) == ["llmp/tiny:latest"]
    assert server.unload_all() == ["llmp/tiny:latest"]
    assert loaded(double) == []


def test_nothing_loaded_sends_no_unload(server, double):
    double.pull("llama3.2:3b")
    assert server.unload_all() == []
    assert double.calls("POST", "/api/generate") == []
    assert ("GET", "/api/ps", None) in double.requests


def test_unload_all_with_ollama_down_is_503(tmp_path):
    server = make_server(f"http://127.0.0.1:{free_port()}", tmp_path)
    with pytest.raises(Unavailable, match=r"not reachable .* \(listing loaded models\)"):
        server.unload_all()
    server.close()


def test_a_gpu_job_unloads_ollama_before_training_and_goes_on_when_it_is_down(
    server, double, tmp_path
):
    from api.jobs.store import JobStore
    from tests.utils.runner import queued_job, runner_with

    store = JobStore(tmp_path / "jobs.sqlite")
    name = double.pull("llama3.2:3b")
    httpx.post(f"{double.url}/api/generate", json={"model": name})
    calls: list[str] = []
    job = queued_job(store, tmp_path)
    runner_with(store, tmp_path, gpu=True, free_gpu=server.unload_all, calls=calls)._run(job)
    assert double.unloaded == [name] and calls == ["api.finetune.recipe"]
    assert [e.data for e in store.events(job.id) if e.type == "gpu"] == [{"unloaded": [name]}]

    double.stop()
    job = queued_job(store, tmp_path)
    runner_with(store, tmp_path, gpu=True, free_gpu=server.unload_all, calls=calls)._run(job)
    assert store.get(job.id).state == "succeeded"
    [warning] = [e.message for e in store.events(job.id) if e.type == "warning"]
    assert f"Ollama is not reachable at {double.url} (listing loaded models)" in warning
