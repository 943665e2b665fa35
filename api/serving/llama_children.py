"""llama.cpp's `llama-server` as a child process: start, health-check, stop.

One `Child` is one `llama-server` serving one GGUF on a loopback port. It dies with the
API (PR_SET_PDEATHSIG, api/childproc.py). PDEATHSIG fires when the *thread* that started
the child ends, and the request threads of the API come and go, so every child is started
from one long-lived thread (`Spawner`). The child's output goes to a log file in the data
directory; the previous run's log is kept as `.log.1` (a crash's log survives the restart).
"""

import logging
import resource
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from api.childproc import die_with_parent
from api.serving.scrub import scrub_paths

log = logging.getLogger(__name__)


class StartFailed(Exception):
    """The child exited or did not become healthy; the message says why (with its log)."""


@dataclass(frozen=True)
class ChildSpec:
    """Everything that decides a child's command line."""

    binary: Path
    gguf: Path
    adapters: tuple[Path, ...]
    context_length: int
    parallel: int
    threads: int
    extra_buffers: bool

    def argv(self, port: int) -> list[str]:
        argv = [
            str(self.binary),
            "--model",
            str(self.gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            # every slot gets the whole context window a request may use
            "--ctx-size",
            str(self.context_length * self.parallel),
            "--parallel",
            str(self.parallel),
            "--no-kv-unified",
            "--threads",
            str(self.threads),
            "--threads-http",
            str(max(2, self.parallel + 1)),
            "--no-webui",
            "--jinja",
        ]
        if not self.extra_buffers:  # the AMX decision of api/serving/cpu.py
            argv.append("--no-repack")
        for adapter in self.adapters:
            argv += ["--lora", str(adapter)]
        if self.adapters:  # applied per request (`lora` in the request), never globally
            argv.append("--lora-init-without-apply")
        return argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:])


class Spawner:
    """Starts processes from one thread that lives as long as the API (see module doc)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-server-spawn")

    def popen(self, argv: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
        pdeathsig = die_with_parent()

        def preexec() -> None:
            if pdeathsig is not None:
                pdeathsig()
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file

        def start() -> subprocess.Popen[bytes]:
            with open(log_path, "ab") as out:
                return subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=log_path.parent,
                    preexec_fn=preexec,
                )

        return self._pool.submit(start).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False)


@dataclass
class Child:
    """A running `llama-server`."""

    spec: ChildSpec
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_reason(self, wait: float = 0.0) -> str:
        """Why the child is gone (waits up to `wait` s for it to finish dying)."""
        try:
            code = self.proc.wait(timeout=wait) if wait else self.proc.poll()
        except subprocess.TimeoutExpired:
            code = None
        return describe_exit(code)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_child(spec: ChildSpec, spawner: Spawner, log_path: Path, timeout: float) -> Child:
    """Start `llama-server` and wait until its /health answers 200; StartFailed (with the
    log's last lines) when it exits or is not ready within `timeout` seconds."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists():
        log_path.replace(log_path.with_suffix(".log.1"))
    for attempt in range(3):  # another process may take the free port before the child
        port = free_port()
        proc = spawner.popen(spec.argv(port), log_path)
        child = Child(spec=spec, proc=proc, port=port, log_path=log_path)
        log.info("started llama-server pid %d on port %d for %s", proc.pid, port, spec.gguf)
        try:
            _wait_healthy(child, timeout)
            return child
        except StartFailed:
            child.stop()
            if attempt < 2 and "bind" in log_tail(log_path, 5).lower():
                continue
            raise
    raise AssertionError("unreachable")


def _wait_healthy(child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not child.alive():
                raise StartFailed(
                    f"llama-server {child.exit_reason()} while loading {child.spec.gguf.name}; "
                    f"the end of its log (logs/llama-server/{child.log_path.name} in the data "
                    f"directory):\n{scrub_paths(log_tail(child.log_path))}"
                )
            try:
                if client.get(f"{child.url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise StartFailed(
        f"llama-server did not load {child.spec.gguf.name} within {timeout:g} s "
        "(LLM_LLAMA_SERVER_START_TIMEOUT); the end of its log (logs/llama-server/"
        f"{child.log_path.name} in the data directory):\n{scrub_paths(log_tail(child.log_path))}"
    )


class ChildLock:
    """A lock per key (one start at a time per model, starts of other models in parallel)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[object, threading.Lock] = {}

    def __call__(self, key: object) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())
