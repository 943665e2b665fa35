"""The last step of every submission: write the job's directory, then queue the job."""

import json
import shutil
from collections.abc import Callable
from typing import Any

from api.jobs.runner import JobRunner
from api.jobs.store import Job, JobStore


def enqueue(
    store: JobStore,
    runner: JobRunner,
    job: Job,
    resolved: dict[str, Any],
    fill: Callable[[], None],
    message: str,
    **event: Any,
) -> None:
    """Write the job's directory (spec.json, data/, then `fill`) and queue it. If the files
    cannot be written, the directory is removed and the job fails with the reason."""
    try:
        job.files.data.mkdir(parents=True)
        job.files.spec.write_text(json.dumps(resolved, indent=2))
        fill()
    except OSError as exc:
        shutil.rmtree(job.job_dir, ignore_errors=True)
        store.transition(
            job.id,
            "failed",
            allowed_from=("validating_files",),
            message=f"Could not write the job's files: {exc}",
            error=str(exc),
        )
        raise
    store.transition(job.id, "queued", allowed_from=("validating_files",), message=message, **event)
    runner.wake()
