"""The service as `make run` starts it: a real uvicorn process on a loopback port."""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from api.config import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def service(request, tmp_path, base_models_dir):
    """Extra LLM_* settings: @pytest.mark.parametrize("service", [{...}], indirect=True)."""
    port = _free_port()
    env = {**os.environ, "LLM_DATA_DIR": str(tmp_path), "LLM_BASE_MODELS_DIR": str(base_models_dir),
           "LLM_API_KEY": "process-test-key-123456", **getattr(request, "param", {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.main:app", "--host", "127.0.0.1",
         "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"service did not start:\n{proc.stdout.read()}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_service_starts_serves_docs_and_answers(service):
    health = httpx.get(f"{service}/health").json()
    assert health["status"] == "ok"
    assert health["base_models"] == ["smollm2-135m"]
    assert httpx.get(f"{service}/docs").status_code == 200
    assert httpx.get(f"{service}/listModels").status_code == 401
    auth = {"Authorization": "Bearer process-test-key-123456"}
    r = httpx.post(f"{service}/generate", headers=auth, timeout=60,
                   json={"model": "smollm2-135m", "prompt": "Hello", "options": {"max_tokens": 4}})
    assert r.status_code == 200
    assert r.json()["completion_tokens"] <= 4


def test_require_cuda_without_cuda_stops_the_service_with_the_reason(tmp_path):
    """LLM_REQUIRE_CUDA on a host whose torch sees no GPU (CUDA_VISIBLE_DEVICES="" makes any
    host one): uvicorn exits at start-up, and its output says why."""
    env = {**os.environ, "LLM_DATA_DIR": str(tmp_path), "LLM_REQUIRE_CUDA": "true",
           "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", "api.main:app", "--host", "127.0.0.1",
         "--port", str(_free_port())], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=300)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "RuntimeError: LLM_REQUIRE_CUDA is set but torch.cuda.is_available() is False" in output
    assert "Application startup failed. Exiting." in output
