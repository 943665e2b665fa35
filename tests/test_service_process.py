"""The service as `make run` starts it: a real uvicorn process on a loopback port."""

import os
import subprocess
import sys

import httpx

from api.config import REPO_ROOT
from tests.utils.net import free_port
from tests.utils.service_process import service  # noqa: F401  (fixture)


def test_service_starts_serves_docs_and_answers(service):
    health = httpx.get(f"{service}/health").json()
    assert health["status"] == "ok"
    assert health["base_models"] == ["smollm2-135m"]
    assert httpx.get(f"{service}/docs").status_code == 200
    assert httpx.get(f"{service}/listModels").status_code == 401
    auth = {"Authorization": "Bearer process-test-key-123456"}
    r = httpx.post(
        f"{service}/generate",
        headers=auth,
        timeout=60,
        json={"model": "smollm2-135m", "prompt": "Hello", "options": {"max_tokens": 4}},
    )
    assert r.status_code == 200
    assert r.json()["completion_tokens"] <= 4


def test_require_cuda_without_cuda_stops_the_service_with_the_reason(tmp_path):
    """LLM_REQUIRE_CUDA on a host whose torch sees no GPU (CUDA_VISIBLE_DEVICES="" makes any
    host one): uvicorn exits at start-up, and its output says why."""
    env = {
        **os.environ,
        "LLM_DATA_DIR": str(tmp_path),
        "LLM_REQUIRE_CUDA": "true",
        "CUDA_VISIBLE_DEVICES": "",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "RuntimeError: LLM_REQUIRE_CUDA is set but torch.cuda.is_available() is False" in output
    assert "Application startup failed. Exiting." in output
