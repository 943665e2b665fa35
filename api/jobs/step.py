"""The entry point of every step process (training, export).

The runner starts a step as `python -m MODULE JOB_DIR --db JOBS_DB [--resume]` (JOBS_DB: the
job store's SQLite file, or its database URL without the password, which the step takes from
LLM_DATABASE_URL in its environment), in its own
process so that an out-of-memory kill or a crash fails that job only. The module ends with

    if __name__ == "__main__":
        sys.exit(step.main(run, description="..."))

where `run(job_dir, store, resume)` does the work and reports progress into the store. When
it raises, the reason goes to error.txt (the runner makes it the job's error) and the
process exits non-zero.

A step that trains on several processes (api/finetune/ranks.py) runs this in each rank too:
there only rank 0 writes error.txt and cleans up; rank N writes error.rankN.txt, which the
launching step process reads when rank 0 has nothing to say.
"""

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from api.db import is_url
from api.jobs.layout import JobFiles
from api.jobs.store import JobStore

StepRun = Callable[[Path, JobStore, bool], object]


def main(
    run: StepRun,
    *,
    description: str,
    on_failure: Callable[[JobFiles], None] | None = None,
    argv: list[str] | None = None,
) -> int:
    """Parse the runner's arguments and run the step; `on_failure` removes what a failed
    step must not leave behind."""
    args = arguments(description, argv)
    files = JobFiles(args.job_dir)
    try:
        store = args.db if is_url(args.db) else Path(args.db)
        run(args.job_dir, JobStore(store), args.resume)
    except Exception as exc:  # the runner reports this as the job's error
        rank = process_rank()
        if on_failure is not None and rank == 0:
            on_failure(files)
        error = files.error if rank == 0 else rank_error(files, rank)
        error.write_text(f"{type(exc).__name__}: {exc}")
        raise
    return 0


def arguments(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """The runner's arguments: job_dir, db, resume."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--db", required=True, help="The job store: a SQLite file or a URL.")
    parser.add_argument(
        "--resume", action="store_true", help="Continue from the job's last checkpoint."
    )
    return parser.parse_args(argv)


def process_rank() -> int:
    """This process's rank when it is one of several training processes (torchrun's RANK),
    else 0."""
    return int(os.environ.get("RANK", "0"))


def rank_error(files: JobFiles, rank: int) -> Path:
    """Where rank `rank` (> 0) of a multi-process step writes why it failed."""
    return files.root / f"error.rank{rank}.txt"
