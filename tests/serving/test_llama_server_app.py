"""The API on backend `llamaserver` (real llama-server children): /generate, streams, the
OpenAI route, a child killed mid-stream, and a model that will not load."""

import json
import os
import signal
import time

import psutil
import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from tests.utils.ollama_double import make_base


@pytest.fixture(scope="module")
def app_client(tmp_path_factory, base_models_dir):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("ls-app"),
        base_models_dir=base_models_dir,
        threads=2,
        backend="llamaserver",
        parallel=2,
    )
    with TestClient(create_app(settings)) as client:
        yield client
    me = psutil.Process()
    assert [p for p in me.children(recursive=True) if p.name() == "llama-server"] == []


def _generate(client, **body):
    return client.post("/generate", json={"model": "smollm2-135m", "prompt": "Hi", **body})


def test_generate_stream_and_openai_route(app_client):
    r = _generate(app_client, options={"max_tokens": 6, "seed": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["response"] and body["completion_tokens"] == 6 and body["done_reason"] == "length"

    with app_client.stream(
        "POST",
        "/generate",
        json={
            "model": "smollm2-135m",
            "prompt": "Hi",
            "stream": True,
            "options": {"max_tokens": 6},
        },
    ) as s:
        lines = [json.loads(line) for line in s.iter_lines() if line]
    assert lines[-1]["done"] and "error" not in lines[-1] and len(lines) >= 3

    r = app_client.post(
        "/v1/chat/completions",
        json={
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 5,
            "stream": True,
        },
    )
    events = [line for line in r.text.splitlines() if line.startswith("data: ")]
    assert r.status_code == 200 and events[-1] == "data: [DONE]"
    health = app_client.get("/health").json()
    assert health["backend"] == "llamaserver" and health["server"]["loaded"] == ["smollm2-135m"]


def test_child_killed_mid_stream_ends_that_stream_with_an_error_line(app_client):
    api_pid = os.getpid()
    body = {
        "model": "smollm2-135m",
        "prompt": "Tell a long story.",
        "stream": True,
        "options": {"max_tokens": 500, "temperature": 1.0},
    }
    with app_client.stream("POST", "/generate", json=body) as s:
        lines = s.iter_lines()
        first = json.loads(next(lines))
        assert not first["done"]
        child = app_client.get("/health").json()["server"]["children"][0]["pid"]
        os.kill(child, signal.SIGSEGV)
        rest = [json.loads(line) for line in lines if line]
    assert rest[-1]["done"] and "SIGSEGV" in rest[-1]["error"]
    r = _generate(app_client, options={"max_tokens": 3})
    assert r.status_code == 200, r.text
    assert os.getpid() == api_pid
    assert app_client.get("/health").json()["server"]["children"][0]["pid"] != child


def test_a_model_that_will_not_load_answers_503_then_is_marked_unavailable(
    tmp_path, base_models_dir
):
    models = tmp_path / "models"
    make_base(models, "broken")
    settings = Settings(data_dir=tmp_path / "data", base_models_dir=models, backend="llamaserver")
    with TestClient(create_app(settings)) as client:
        for attempt in range(3):
            r = client.post("/generate", json={"model": "broken", "prompt": "Hi"})
            assert r.status_code == 503, r.text
            if attempt < 2:
                assert int(r.headers["Retry-After"]) >= 1
                time.sleep(int(r.headers["Retry-After"]))
        assert "3 times in a row" in r.json()["detail"]
        listed = client.get("/listModels").json()["data"]
        assert "3 times in a row" in listed[0]["unavailable"]
        assert client.get("/health").json()["server"]["unavailable"]["broken"]
