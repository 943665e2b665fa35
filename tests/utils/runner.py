"""The job runner without training: a queued job in a store, and a runner whose executor
only records which step module it would have run."""

from pathlib import Path

from api.config import Settings
from api.finetune.kinds import fine_tune_kinds
from api.jobs.executors.base import Executor, Placement, StepHandle, StepLaunch
from api.jobs.runner import JobRunner
from api.jobs.store import JobStore


def queued_job(store: JobStore, tmp_path: Path, kind: str = "fine_tune"):
    job = store.create(
        model_name="tuned",
        base_model="tiny",
        spec={"export": "none"},
        jobs_dir=tmp_path / "jobs",
        kind=kind,
    )
    job.job_dir.mkdir(parents=True)
    store.transition(job.id, "queued", allowed_from=("validating_files",), message="queued")
    return store.get(job.id)


def runner_with(store, tmp_path, *, gpu: bool, free_gpu, calls: list[str]) -> JobRunner:
    return JobRunner(
        store,
        Settings(data_dir=tmp_path),
        kinds=fine_tune_kinds(),
        free_gpu=free_gpu,
        trains_on_gpu=lambda: gpu,
        executor=RecordingExecutor(calls),
    )


class _Done(StepHandle):
    def placed(self) -> Placement:
        return Placement()

    def wait(self) -> int:
        return 0

    def kill(self) -> None:
        pass


class RecordingExecutor(Executor):
    """Each step "succeeds" at once; `calls` gets its module (the training process, without
    training)."""

    name, local, capacity = "recording", True, 1

    def __init__(self, calls: list[str]):
        self.calls = calls

    def start(self, launch: StepLaunch) -> StepHandle:
        self.calls.append(launch.module)
        return _Done()
