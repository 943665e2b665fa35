"""A step process that trains nothing, for the scheduling tests and scripts/bench_jobs.py.

Run by a job runner as `python -m tests.utils.wait_step JOB_DIR --db DB` (the kind
`JobKind(train=WAIT_STEP)`): it records the CUDA_VISIBLE_DEVICES it was given as an `env`
event, then holds its slot until the file `release` appears in the job's directory, or
for the job spec's `seconds` (default 120), and records its metrics.
"""

import os
import sys
import time
from pathlib import Path

from api.jobs import step
from api.jobs.kinds import ChildStep
from api.jobs.store import JobStore

WAIT_STEP = ChildStep("tests.utils.wait_step", "Training failed")


def release(job_dir: Path) -> None:
    (job_dir / "release").touch()


def run(job_dir: Path, store: JobStore, resume: bool) -> None:
    job = store.require(job_dir.name)
    cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    store.add_event(job.id, "env", f"CUDA_VISIBLE_DEVICES={cuda}", cuda_visible_devices=cuda)
    started = time.monotonic()
    deadline = started + float(job.spec.get("seconds", 120))
    while not (job_dir / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    store.set_metrics(job.id, {"step_seconds": time.monotonic() - started})


if __name__ == "__main__":
    sys.exit(step.main(run, description="Hold a job's slot (scheduling tests)."))
