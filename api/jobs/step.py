"""The entry point of every step process (training, export).

The runner starts a step as `python -m MODULE JOB_DIR --db JOBS_DB [--resume]`, in its own
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
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument(
        "--resume", action="store_true", help="Continue from the job's last checkpoint."
    )
    args = parser.parse_args(argv)
    files = JobFiles(args.job_dir)
    try:
        run(args.job_dir, JobStore(args.db), args.resume)
    except Exception as exc:  # the runner reports this as the job's error
        if on_failure is not None:
            on_failure(files)
        files.error.write_text(f"{type(exc).__name__}: {exc}")
        raise
    return 0
