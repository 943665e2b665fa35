"""One job at a time, each in its own process.

A thread in the API process takes the oldest queued job, runs the recipe as
`python -m api.finetune.recipe` (its own process group, killed if the API dies), and
records how it ended. At start-up, jobs left `running` by a previous API process are
resumed from their last checkpoint, or failed with the reason when they have none.
"""

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from api.config import REPO_ROOT, Settings
from api.jobs.store import Job, JobStore

log = logging.getLogger(__name__)

AfterTraining = Callable[[Job], None]
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the runner thread's process dies (Linux)."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def has_checkpoint(job: Job) -> bool:
    return any((job.job_dir / "checkpoints").glob("checkpoint-*"))


class JobRunner:
    def __init__(self, store: JobStore, settings: Settings,
                 after_training: AfterTraining | None = None):
        self.store, self.settings = store, settings
        self.after_training = after_training
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._current: tuple[str, subprocess.Popen[bytes]] | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking jobs; a running job's process is ended and resumes at next start."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            current = self._current
        if current:
            _kill(current[1])
        if self._thread:
            self._thread.join(timeout=30)

    def wake(self) -> None:
        self._wake.set()

    def recover(self) -> None:
        for job in self.store.list(states=("running", "validating_files"), limit=10_000):
            _kill_stale(job)
            if job.state == "running" and has_checkpoint(job):
                self.store.transition(job.id, "queued", allowed_from=("running",),
                                      message="The API restarted during training; the job will "
                                              "resume from its last checkpoint.")
            else:
                reason = ("The API restarted before the job saved a checkpoint; submit it again."
                          if job.state == "running" else
                          "The API restarted while the job's files were being validated.")
                self.store.transition(job.id, "failed", allowed_from=(job.state,),
                                      message=reason, error=reason)

    # ------------------------------------------------------------ cancel
    def cancel(self, job_id: str) -> None:
        """Cancel a queued or running job; a terminal job is left as it is."""
        moved = self.store.transition(job_id, "cancelled",
                                      allowed_from=("validating_files", "queued", "running"),
                                      message="Cancelled at the user's request.")
        with self._lock:
            current = self._current
        if moved and current and current[0] == job_id:
            _kill(current[1])

    # ------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.next_queued()
            if job is None:
                self._wake.wait(self.settings.job_poll_seconds)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception as exc:  # never let one job stop the queue
                log.exception("job %s crashed the runner", job.id)
                self.store.transition(job.id, "failed", allowed_from=("running", "queued"),
                                      message=f"Internal error: {exc}", error=str(exc))

    def _run(self, job: Job) -> None:
        resume = has_checkpoint(job)
        message = ("Resuming training from the last checkpoint." if resume
                   else "Training started.")
        if not self.store.transition(job.id, "running", allowed_from=("queued",),
                                     message=message):
            return  # cancelled meanwhile
        command = [sys.executable, "-m", "api.finetune.recipe", str(job.job_dir),
                   "--db", str(self.store.path)] + (["--resume"] if resume else [])
        (job.job_dir / "error.txt").unlink(missing_ok=True)
        with open(job.job_dir / "train.log", "ab") as out:
            proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=_die_with_parent)
        (job.job_dir / "pid").write_text(str(proc.pid))
        with self._lock:
            self._current = (job.id, proc)
        try:
            code = proc.wait()
        finally:
            with self._lock:
                self._current = None
        if self._stop.is_set():
            return  # shutting down: recover() resumes it at the next start
        self._finish(job, code)

    def _finish(self, job: Job, code: int) -> None:
        current = self.store.get(job.id)
        if current is None or current.terminal:
            return  # cancelled while running
        if code != 0:
            reason = _failure_reason(job.job_dir, code)
            self.store.transition(job.id, "failed", allowed_from=("running",),
                                  message=f"Training failed: {reason}", error=reason)
            return
        if self.after_training is not None:
            try:
                self.after_training(current)
            except Exception as exc:
                log.exception("after-training step of %s failed", job.id)
                self.store.transition(job.id, "failed", allowed_from=("running", "exporting"),
                                      message=f"Export failed: {exc}", error=str(exc))
                return
        metrics = (self.store.get(job.id) or current).metrics or {}
        self.store.transition(job.id, "succeeded", allowed_from=("running", "exporting"),
                              message="Fine-tuning finished.", metrics=metrics)


def _failure_reason(job_dir: Path, code: int) -> str:
    error = job_dir / "error.txt"
    if error.is_file() and error.read_text().strip():
        return error.read_text().strip()[-2000:]
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (most likely out of memory)" if code == -signal.SIGKILL else ""
        return f"the training process was killed by {name}{hint}"
    log_file = job_dir / "train.log"
    tail = log_file.read_text(errors="replace")[-1500:] if log_file.is_file() else ""
    return f"the training process exited with code {code}. Log tail:\n{tail}"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _kill_stale(job: Job) -> None:
    """A recipe process orphaned by a dead API must not keep training beside a resumed one."""
    try:
        pid = int((job.job_dir / "pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if str(job.job_dir).encode() in cmdline:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
