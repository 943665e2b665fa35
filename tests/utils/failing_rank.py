"""A step module whose rank $FAILING_RANK fails: the multi-process launcher's error handling
(api/finetune/ranks.py) without the cost of training."""

import os
import sys

from api.jobs import step


def run(job_dir, store, resume) -> None:
    rank = step.process_rank()
    if rank == int(os.environ["FAILING_RANK"]):
        raise RuntimeError(f"rank {rank} failed on purpose")


if __name__ == "__main__":
    sys.exit(step.main(run, description="A step that fails on one rank."))
