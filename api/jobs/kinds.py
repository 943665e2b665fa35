"""What the runner does with each kind of job: a table built in main.py.

A kind runs either in the API process (`in_process`: dataset generation, whose teacher may be
the in-process model) or as step processes (api/jobs/step.py): `train` first (after freeing
the GPU), then `export` when the spec asks for one (state `exporting`), then `publish` in the
API process (it owns the serving backend and the registry).

How each recovers from an API restart follows from the same fields: in-process and
export-only jobs start again; a training job resumes from its last checkpoint, or goes
straight to its export when training had finished (its metrics are recorded), and fails
when it has neither.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.jobs.store import Job

# Work done in the API process. Called with the job and a should_stop() to poll; returns the
# job's metrics; an exception fails the job with its message.
InProcess = Callable[[Job, Callable[[], bool]], dict[str, Any]]
# Registers an exported model for serving; returns what the job's metrics should show.
Publish = Callable[[Job], dict[str, Any]]


@dataclass(frozen=True)
class ChildStep:
    module: str  # run as `python -m MODULE JOB_DIR --db JOBS_DB [--resume]`
    failure: str  # how the job's error starts when the step fails ("Training failed: ...")


@dataclass(frozen=True)
class JobKind:
    in_process: InProcess | None = None
    train: ChildStep | None = None
    export: ChildStep | None = None
    publish: Publish | None = None

    def trained(self, job: Job) -> bool:
        """The training step finished (its metrics are the last thing it records)."""
        return self.train is not None and job.metrics is not None

    def resumable(self, job: Job) -> bool:
        """Whether a job interrupted while running can continue, rather than fail."""
        return self.train is None or job.files.has_checkpoint() or self.trained(job)

    def exports(self, job: Job) -> bool:
        return self.export is not None and job.spec.get("export", "none") != "none"
