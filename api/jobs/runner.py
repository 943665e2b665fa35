"""One job at a time, each in its own process.

A thread in the API process takes the oldest queued job and runs what its kind says
(api/jobs/kinds.py, the table built in main.py): in this process, or as step processes
(api/jobs/step.py; each its own process group, killed if the API dies), and records how it
ended. At start-up, jobs left `running` by a previous API process are resumed from where
they were, or failed with the reason when they cannot be.

Replicas (several API processes over one database, api/db): a running job records its owner
(LLM_REPLICA_ID) and a lease that a heartbeat thread renews; recovery claims only this
replica's jobs and expired leases, and the heartbeat stops local work on a job cancelled
through another replica.

Before training on a GPU, `free_gpu` (the Ollama backend's unload_all, wired in main.py)
empties the GPU of served models: Ollama keeps models loaded for minutes after a request,
and a training job would otherwise start out of memory. It is best effort: when it fails
the job still starts, with a warning event.
"""

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping

from api.childproc import die_with_parent
from api.config import REPO_ROOT, Settings
from api.errors import AppError
from api.jobs.kinds import ChildStep, InProcess, JobKind, Publish
from api.jobs.layout import JobFiles
from api.jobs.store import Job, JobStore

log = logging.getLogger(__name__)

# Frees GPU memory held by the serving backend; returns the names of the models unloaded.
FreeGpu = Callable[[], list[str]]


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        *,
        kinds: Mapping[str, JobKind],
        free_gpu: FreeGpu | None = None,
        trains_on_gpu: Callable[[], bool] = lambda: False,
    ):
        """`kinds`: the job kinds it runs (main.py's table; api/finetune/kinds.py's for a
        bare runner in tests and scripts). `trains_on_gpu`: whether a job will train on a
        GPU (main.py asks the training-device probe, so this process never imports torch)."""
        self.store, self.settings, self.kinds = store, settings, kinds
        self.free_gpu, self.trains_on_gpu = free_gpu, trains_on_gpu
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._current: tuple[str, subprocess.Popen[bytes]] | None = None
        self._thread: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)
        self._thread.start()
        self._heartbeat = threading.Thread(target=self._beat, name="job-heartbeat", daemon=True)
        self._heartbeat.start()

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
        if self._heartbeat:
            self._heartbeat.join(timeout=30)

    def wake(self) -> None:
        self._wake.set()

    def recover(self, *, own: bool = True) -> None:
        """Re-queue (resumable) or fail the jobs nobody works on any more: at start-up this
        replica's own from before (`own`), and any replica's whose lease expired (it died;
        the heartbeat looks for those too). Another live replica's jobs are never touched:
        each job is claimed first, and only one claimant wins."""
        for job in self.store.recoverable(own=own):
            if not self.store.claim(job.id):
                continue  # its owner renewed the lease, or another replica took it
            _kill_stale(job)
            if job.state in ("running", "exporting") and self._kind(job).resumable(job):
                self.store.transition(
                    job.id,
                    "queued",
                    allowed_from=("running", "exporting"),
                    message="The API restarted during the job; it will resume from where it was."
                    if job.owner in (None, self.store.replica)
                    else f"Replica {job.owner!r} stopped renewing the job's lease; it will "
                    "resume from where it was.",
                )
            else:
                reason = (
                    "The API restarted before the job saved a checkpoint; submit it again."
                    if job.state in ("running", "exporting")
                    else "The API restarted while the job's files were being validated."
                )
                self.store.transition(
                    job.id, "failed", allowed_from=(job.state,), message=reason, error=reason
                )

    # ------------------------------------------------------------ heartbeat
    def _beat(self) -> None:
        """Every LLM_JOB_HEARTBEAT_SECONDS: renew this replica's leases, stop local work on
        jobs that ended in the store (cancelled on another replica), and take over the jobs
        of replicas whose leases expired."""
        while not self._stop.wait(self.settings.job_heartbeat_seconds):
            try:
                self.store.renew()
                for job_id in self._local_jobs():
                    job = self.store.get(job_id)
                    if job is None or job.terminal:
                        self._stop_local(job_id)
                self.recover(own=False)
            except Exception:  # the database may be away for a moment: try again next beat
                log.exception("job heartbeat failed")

    def _local_jobs(self) -> list[str]:
        """The ids of the jobs whose work runs in this runner now."""
        with self._lock:
            return [self._current[0]] if self._current else []

    # ------------------------------------------------------------ cancel
    def cancel(self, job_id: str) -> None:
        """Cancel a queued or running job; a terminal job is left as it is. The job's work
        stops here if this replica runs it, else at its replica's next heartbeat."""
        moved = self.store.transition(
            job_id,
            "cancelled",
            allowed_from=("validating_files", "queued", "running", "exporting"),
            message="Cancelled at the user's request.",
        )
        if moved:
            self._stop_local(job_id)

    def _stop_local(self, job_id: str) -> None:
        """Stop this job's work if this runner is running it (its step's process group)."""
        with self._lock:
            current = self._current
        if current and current[0] == job_id:
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
                self.store.transition(
                    job.id,
                    "failed",
                    allowed_from=("running", "queued"),
                    message=f"Internal error: {exc}",
                    error=str(exc),
                )

    def _kind(self, job: Job) -> JobKind:
        return self.kinds.get(job.kind) or JobKind()

    def _run(self, job: Job) -> None:
        kind = self._kind(job)
        resume = job.files.has_checkpoint()
        trained = kind.trained(job)
        message = (
            "Training had finished before the API restarted; exporting."
            if trained
            else "Resuming training from the last checkpoint."
            if resume and kind.train is not None
            else "Started."
        )
        if not self.store.transition(job.id, "running", allowed_from=("queued",), message=message):
            return  # cancelled meanwhile
        if kind.in_process is not None:
            self._run_in_process(job, kind.in_process)
            return
        if kind.train is not None and not trained:  # resuming a step past max_steps
            self._free_gpu(job)
            if not self._step(job, kind.train, ["--resume"] if resume else []):
                return
        if kind.exports(job) and kind.export is not None:
            if not self.store.transition(
                job.id,
                "exporting",
                allowed_from=("running",),
                message="Exporting the model for serving.",
            ):
                return
            if not self._step(job, kind.export, []):
                return
            if kind.publish is not None and not self._publish(job, kind.publish):
                return
        metrics = (self.store.get(job.id) or job).metrics or {}
        self.store.transition(
            job.id,
            "succeeded",
            allowed_from=("running", "exporting"),
            message="Finished.",
            metrics=metrics,
        )

    def _free_gpu(self, job: Job) -> None:
        """Unload the served models before training on a GPU (best effort)."""
        if self.free_gpu is None or not self.trains_on_gpu():
            return
        try:
            unloaded = self.free_gpu()
        except Exception as exc:
            reason = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
            log.warning(
                "job %s: could not unload the served models before training: %s", job.id, reason
            )
            self.store.add_event(
                job.id,
                "warning",
                "Could not unload the served models "
                f"before training; the GPU may be short of memory: {reason}",
            )
            return
        if unloaded:
            self.store.add_event(
                job.id,
                "gpu",
                f"Unloaded {', '.join(unloaded)} from the serving backend to free GPU memory.",
                unloaded=unloaded,
            )

    def _run_in_process(self, job: Job, work: InProcess) -> None:
        def should_stop() -> bool:
            if self._stop.is_set():
                return True
            current = self.store.get(job.id)
            return current is None or current.terminal

        try:
            metrics = work(job, should_stop)
        except Exception as exc:
            reason = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
            log.info("job %s failed: %s", job.id, reason, exc_info=not isinstance(exc, AppError))
            self.store.transition(
                job.id, "failed", allowed_from=("running",), message=reason, error=reason
            )
            return
        if self._stop.is_set():
            return  # shutting down: recover() queues it again at the next start
        self.store.set_metrics(job.id, metrics)
        self.store.transition(
            job.id,
            "succeeded",
            allowed_from=("running",),
            message=metrics.get("report") or "Finished.",
        )

    def _step(self, job: Job, step: ChildStep, extra: list[str]) -> bool:
        """Run a step process; True when it succeeded and the job goes on."""
        code = self._child(job, step.module, extra)
        return code is not None and self._check(job, code, step.failure)

    def _child(self, job: Job, module: str, extra: list[str]) -> int | None:
        """Run one step in its own process; None when the runner is shutting down."""
        files = job.files
        command = [
            sys.executable,
            "-m",
            module,
            str(job.job_dir),
            "--db",
            str(self.store.path),
            *extra,
        ]
        files.error.unlink(missing_ok=True)
        with open(files.log, "ab") as out:
            proc = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group
                preexec_fn=die_with_parent(),
            )
        files.pid.write_text(str(proc.pid))
        with self._lock:
            self._current = (job.id, proc)
        # A cancel that landed between the state change and the line above saw no process
        # to stop; it is stopped here (cancel() sees it in _current from now on).
        latest = self.store.get(job.id)
        if latest is None or latest.terminal:
            _kill(proc)
        try:
            code = proc.wait()
        finally:
            with self._lock:
                self._current = None
        return None if self._stop.is_set() else code  # at shutdown recover() takes over

    def _check(self, job: Job, code: int, what: str) -> bool:
        """True when the step succeeded and the job is still live; else records the failure."""
        current = self.store.get(job.id)
        if current is None or current.terminal:
            shutil.rmtree(job.files.export_partial, ignore_errors=True)  # SIGTERMed export
            return False  # cancelled while the step ran
        if code == 0:
            return True
        reason = _failure_reason(job.files, code)
        self.store.transition(
            job.id,
            "failed",
            allowed_from=("running", "exporting"),
            message=f"{what}: {reason}",
            error=f"{what}: {reason}",
        )
        return False

    def _publish(self, job: Job, publish: Publish) -> bool:
        try:
            shown = publish(job)
        except Exception as exc:
            log.info("publishing %s failed: %s", job.id, exc)
            shutil.rmtree(job.files.export, ignore_errors=True)  # no orphan GGUF files
            reason = getattr(exc, "detail", None) or str(exc)
            self.store.transition(
                job.id,
                "failed",
                allowed_from=("exporting",),
                message=f"Export failed: {reason} The adapter is kept; retry "
                "with POST /jobs/{id}/export.",
                error=f"Export failed: {reason}",
            )
            return False
        current = self.store.get(job.id)
        self.store.set_metrics(job.id, {**((current.metrics if current else None) or {}), **shown})
        return True


def _failure_reason(files: JobFiles, code: int) -> str:
    error = files.error
    if error.is_file() and error.read_text().strip():
        return error.read_text().strip()[-2000:]
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (most likely out of memory)" if code == -signal.SIGKILL else ""
        return f"the training process was killed by {name}{hint}"
    log_file = files.log
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
        pid = int(job.files.pid.read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as proc:
            cmdline = proc.read()
    except (OSError, ValueError):
        return
    if str(job.job_dir).encode() in cmdline:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
