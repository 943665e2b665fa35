"""The `service` fixture: the API as `make run` starts it, a real uvicorn process on a loopback
port with an API key. Modules that use it import it (`from tests.utils.service_process import
service`)."""

import os
import subprocess
import sys
import time

import httpx
import pytest

from api.config import REPO_ROOT
from tests.utils.net import free_port


@pytest.fixture
def service(request, tmp_path, base_models_dir):
    """Extra LLM_* settings: @pytest.mark.parametrize("service", [{...}], indirect=True)."""
    port = free_port()
    env = {
        **os.environ,
        "LLM_DATA_DIR": str(tmp_path),
        "LLM_BASE_MODELS_DIR": str(base_models_dir),
        "LLM_API_KEY": "process-test-key-123456",
        **getattr(request, "param", {}),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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
