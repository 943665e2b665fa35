"""A step module standing in for the recipe's ranks, for the multi-process launcher
(api/finetune/ranks.py) without the cost of training. RANK_DOUBLE says what each rank does:
`fail:N` (rank N raises), or `wait:DIR` (write DIR/rank-N.pid, then sleep until killed)."""

import os
import sys
import time
from pathlib import Path

from api.jobs import step


def run(job_dir, store, resume) -> None:
    rank = step.process_rank()
    action, _, arg = os.environ["RANK_DOUBLE"].partition(":")
    if action == "fail" and rank == int(arg):
        raise RuntimeError(f"rank {rank} failed on purpose")
    if action == "wait":
        (Path(arg) / f"rank-{rank}.pid").write_text(str(os.getpid()))
        time.sleep(600)


if __name__ == "__main__":
    sys.exit(step.main(run, description="A stand-in for the recipe's ranks."))
