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
"""

import argparse
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
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--db", required=True, help="The job store: a SQLite file or a URL.")
    parser.add_argument(
        "--resume", action="store_true", help="Continue from the job's last checkpoint."
    )
    args = parser.parse_args(argv)
    files = JobFiles(args.job_dir)
    try:
        store = args.db if is_url(args.db) else Path(args.db)
        run(args.job_dir, JobStore(store), args.resume)
    except Exception as exc:  # the runner reports this as the job's error
        if on_failure is not None:
            on_failure(files)
        files.error.write_text(f"{type(exc).__name__}: {exc}")
        raise
    return 0
