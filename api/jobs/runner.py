"""Runs queued jobs: step processes through an executor, in-process work in its own lane.

A dispatcher thread in the API process hands each queued job to a thread of its own, in one
of two lanes: kinds that run in this process (api/jobs/kinds.py: dataset generation, push)
one at a time, and kinds made of step processes (training, export; api/jobs/step.py) as
many at once as the executor takes (api/jobs/executors: `local` one, `ray` as many as the
cluster's GPUs allow, Ray queueing the rest). Neither lane waits for the other. A step job
stays `queued` until its step holds its resources, then runs its steps and records how it
ended. At start-up, jobs left `running` by a previous API process are resumed from where
they were, or failed with the reason when they cannot be.

Replicas (several API processes over one database, api/db): a running job records its owner
(LLM_REPLICA_ID) and a lease that a heartbeat thread renews; recovery claims only this
replica's jobs and expired leases, and the heartbeat stops local work on a job cancelled
through another replica.

Before training on this host's GPU (executor `local`), `free_gpu` (the Ollama backend's
unload_all, wired in main.py) empties the GPU of served models: Ollama keeps models loaded
for minutes after a request, and a training job would otherwise start out of memory. It is
best effort: when it fails the job still starts, with a warning event.
"""

import logging
import os
import shutil
import signal
import threading
from collections.abc import Callable, Mapping

from api.config import Settings
from api.errors import AppError
from api.jobs.executors import make_executor
from api.jobs.executors.base import Executor, Placement, StepHandle, StepLaunch, StepRefused
from api.jobs.kinds import ChildStep, InProcess, JobKind, Publish
from api.jobs.layout import JobFiles
from api.jobs.store import Job, JobStore

log = logging.getLogger(__name__)

# Frees GPU memory held by the serving backend; returns the names of the models unloaded.
FreeGpu = Callable[[], list[str]]
INLINE, STEPS = "in-process", "steps"  # the two lanes


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        *,
        kinds: Mapping[str, JobKind],
        free_gpu: FreeGpu | None = None,
        trains_on_gpu: Callable[[], bool] = lambda: False,
        executor: Executor | None = None,
    ):
        """`kinds`: the job kinds it runs (main.py's table; api/finetune/kinds.py's for a
        bare runner in tests and scripts). `trains_on_gpu`: whether a job will train on a
        GPU (main.py asks the training-device probe, so this process never imports torch).
        `executor`: where step processes run; by default the one LLM_JOB_EXECUTOR names."""
        self.store, self.settings, self.kinds = store, settings, kinds
        self.free_gpu, self.trains_on_gpu = free_gpu, trains_on_gpu
        self.executor = executor or make_executor(settings)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._handles: dict[str, StepHandle] = {}  # job id -> its running step
        self._jobs: dict[str, tuple[str, threading.Thread]] = {}  # job id -> lane, thread
        self._thread: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.executor.open()  # a cluster that cannot be reached stops the start here
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)
        self._thread.start()
        self._heartbeat = threading.Thread(target=self._beat, name="job-heartbeat", daemon=True)
        self._heartbeat.start()

    def stop(self) -> None:
        """Stop taking jobs; running steps are ended and resume at the next start."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            handles = list(self._handles.values())
        for handle in handles:
            handle.kill()
        if self._thread:
            self._thread.join(timeout=30)
        if self._heartbeat:
            self._heartbeat.join(timeout=30)
        with self._lock:
            threads = [thread for _, thread in self._jobs.values()]
        for thread in threads:
            thread.join(timeout=30)
        self.executor.close()

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
                with self._lock:
                    taken = list(self._jobs)
                self.store.renew(queued=taken)
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
            return list(self._handles)

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
        """Stop the job's step if this runner runs it, wherever the executor placed it.
        (In-process work sees the job's terminal state and stops by itself.)"""
        with self._lock:
            handle = self._handles.get(job_id)
        if handle is not None:
            handle.kill()

    # ------------------------------------------------------------ the dispatcher
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                started = self._dispatch()
            except Exception:  # a store that failed once must not end the dispatcher
                log.exception("the job dispatcher failed; retrying")
                started = False
            if not started:
                self._wake.wait(self.settings.job_poll_seconds)
                self._wake.clear()

    def _dispatch(self) -> bool:
        """Give each queued job (oldest first) a thread when its lane has room; True when
        one started."""
        started = False
        queued = self.store.list(states=("queued",), limit=1000)
        for job in reversed(queued):  # oldest first
            if self._stop.is_set():
                break
            lane = INLINE if self._kind(job).in_process is not None else STEPS
            with self._lock:
                busy = sum(1 for own, _ in self._jobs.values() if own == lane)
                if job.id in self._jobs or busy >= self._capacity(lane):
                    continue
            # Of several replicas, one takes the job (its submitter at once, any other once
            # the submitter's lease on it expired): a step is never started twice.
            if not self.store.claim(job.id):
                continue
            with self._lock:
                thread = threading.Thread(
                    target=self._run_guarded, args=(job,), name=f"job-{job.id}", daemon=True
                )
                self._jobs[job.id] = (lane, thread)
            thread.start()
            started = True
        return started

    def _capacity(self, lane: str) -> int:
        return 1 if lane == INLINE else self.executor.capacity

    def _run_guarded(self, job: Job) -> None:
        try:
            self._run(job)
        except Exception as exc:  # never let one job stop the queue
            log.exception("job %s crashed the runner", job.id)
            self.store.transition(
                job.id,
                "failed",
                allowed_from=("running", "queued", "exporting"),
                message=f"Internal error: {exc}",
                error=str(exc),
            )
        finally:
            with self._lock:
                self._jobs.pop(job.id, None)
            self._wake.set()  # its lane has room again

    def _kind(self, job: Job) -> JobKind:
        return self.kinds.get(job.kind) or JobKind()

    def _mark_running(self, job: Job, message: str) -> bool:
        """queued -> running; False when the job was cancelled meanwhile."""
        return self.store.transition(job.id, "running", allowed_from=("queued",), message=message)

    def _run(self, job: Job) -> None:
        kind = self._kind(job)
        if kind.in_process is not None:
            if self._mark_running(job, "Started."):
                self._run_in_process(job, kind.in_process)
            return
        resume = job.files.has_checkpoint()
        trained = kind.trained(job)
        message = (
            "Training had finished before the API restarted; exporting."
            if trained
            else "Resuming training from the last checkpoint."
            if resume and kind.train is not None
            else "Started."
        )
        if kind.train is not None and not trained:  # resuming a step past max_steps
            start_message: str | None = message
            if self.executor.local:  # this host's GPU: empty it first
                if not self._mark_running(job, message):
                    return
                self._free_gpu(job)
                start_message = None
            if not self._step(
                job,
                kind.train,
                ["--resume"] if resume else [],
                gpus=int(job.spec.get("gpus", 1)),
                resumable=True,
                start_message=start_message,  # once the executor has placed it
            ):
                return
        elif not self._mark_running(job, message):
            return  # cancelled meanwhile
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

    # ------------------------------------------------------------ step processes
    def _step(
        self,
        job: Job,
        step: ChildStep,
        extra: list[str],
        *,
        gpus: int = 0,
        resumable: bool = False,
        start_message: str | None = None,
    ) -> bool:
        """Run a step process through the executor; True when it succeeded and the job goes
        on. With `start_message` the job moves from queued to running once the step is
        placed (it waits in `queued` while the executor has no room)."""
        launch = StepLaunch(
            module=step.module,
            job_dir=job.job_dir,
            db=str(self.store.path),
            extra=extra,
            gpus=gpus,
            resumable=resumable,
        )
        try:
            handle = self.executor.start(launch)
        except StepRefused as exc:
            reason = f"{step.failure}: {exc}"
            self.store.transition(
                job.id,
                "failed",
                allowed_from=("queued", "running", "exporting"),
                message=reason,
                error=reason,
            )
            return False
        with self._lock:
            self._handles[job.id] = handle
        try:
            # A cancel (or stop) that landed before the line above saw no step to stop; it
            # is stopped here (cancel() and stop() see it in _handles from now on).
            latest = self.store.get(job.id)
            if latest is None or latest.terminal or self._stop.is_set():
                handle.kill()
            placement = handle.placed()
            if placement is not None and placement.node is not None:
                self._placed(job, step, placement)
            if (
                placement is not None
                and start_message
                and not self._mark_running(job, start_message)
            ):
                handle.kill()  # cancelled while it waited for resources
            code = handle.wait()
        finally:
            with self._lock:
                self._handles.pop(job.id, None)
        for note in handle.notes():
            self.store.add_event(job.id, "node_lost", note)
        if self._stop.is_set():
            return False  # shutting down: recover() takes the job over at the next start
        return self._check(job, code, step.failure, lost=handle.lost)

    def _placed(self, job: Job, step: ChildStep, where: Placement) -> None:
        gpus = (
            f"GPU(s) {', '.join(where.gpu_ids)} (CUDA_VISIBLE_DEVICES={where.cuda_visible_devices})"
            if where.gpu_ids
            else "no GPU"
        )
        self.store.add_event(
            job.id,
            "placed",
            f"{step.module} runs on node {(where.node or '')[:12]} ({where.host}) with {gpus}.",
            node=where.node,
            host=where.host,
            gpu_ids=list(where.gpu_ids),
            cuda_visible_devices=where.cuda_visible_devices,
        )

    def _check(self, job: Job, code: int, what: str, *, lost: str | None = None) -> bool:
        """True when the step succeeded and the job is still live; else records the failure
        (`lost`: why the executor lost the step, instead of the process's own reason)."""
        current = self.store.get(job.id)
        if current is None or current.terminal:
            shutil.rmtree(job.files.export_partial, ignore_errors=True)  # SIGTERMed export
            return False  # cancelled while the step ran
        if code == 0:
            return True
        reason = lost or _failure_reason(job.files, code)
        self.store.transition(
            job.id,
            "failed",
            allowed_from=("queued", "running", "exporting"),  # queued: lost before placed
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
