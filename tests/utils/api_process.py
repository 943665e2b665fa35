"""The API as a real uvicorn process on a loopback port, which a test can SIGKILL and restart
on the same data directory; and a look at which processes still work on that directory."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from api.config import REPO_ROOT
from tests.utils.net import free_port


class ApiProcess:
    """`start()` launches uvicorn in its own session; `kill()` is SIGKILL to the API process
    only (as the OOM killer would), so its children must end by themselves."""

    def __init__(self, data_dir: Path, models_dir: Path, **env: str):
        self.data_dir, self.models_dir = data_dir, models_dir
        self.env = {
            **os.environ,
            "LLM_DATA_DIR": str(data_dir),
            "LLM_BASE_MODELS_DIR": str(models_dir),
            "LLM_THREADS": "2",
            "LLM_JOB_POLL_SECONDS": "0.2",
            "HF_HUB_OFFLINE": "1",
            **env,
        }
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"api-{self.port}.log"

    def start(self, timeout: float = 120) -> "ApiProcess":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "api.main:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the API did not start within {timeout} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def client(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the API process alone and reap it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then anything left in its process group is killed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes (other than this one) that name `path` or work in
    it (a llama-server child names only its model, and runs in DATA_DIR/logs/llama-server)."""
    needle = str(path).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        try:
            cwd = os.readlink(entry / "cwd").encode()
        except OSError:
            cwd = b""
        if (needle in cmdline or cwd.startswith(needle)) and state != "Z":
            words = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {words}")
    return found


def wait_no_processes_using(path: Path, timeout: float = 30) -> list[str]:
    """[] once no process names `path`; else what still does after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (left := processes_using(path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left
