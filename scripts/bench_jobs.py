"""Job scheduling: jobs completed per minute with 1 vs 2 fake-GPU Ray workers, and the
scheduling overhead per job, on tiny jobs whose step only holds its GPU for `--step` seconds.

    .venv/bin/python scripts/bench_jobs.py [--jobs 8] [--step 2] [--out docs/benchmarks.md]

Each run starts a local Ray cluster (ray.cluster_utils.Cluster: a head without GPUs and one
node with N fake GPUs), queues `--jobs` jobs at once in a JobRunner with LLM_JOB_EXECUTOR=ray
and times them until the last one succeeds; a run with the local executor (one job at a
time, no Ray) is the baseline. The step is tests/utils/wait_step.py (a real step process
through the same runner, actor and store, without training), so the step time is known:
the overhead per job is the GPU-slot time not spent in the step,
(wall time x slots - sum of step times) / jobs: starting the actor and the step process,
placing it, recording its events. Training time on top of it is the recipe's own
(see "Fine-tuning" above).

Writes the "Job scheduling" section of docs/benchmarks.md only when the 1-minute load
average stays at or under the core count; otherwise prints the figures and says why.
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_doc import Quiet, write_section_if_quiet  # noqa: E402  (scripts/ is on sys.path when run)

from api.config import Settings  # noqa: E402
from api.jobs.kinds import JobKind  # noqa: E402
from api.jobs.runner import JobRunner  # noqa: E402
from api.jobs.store import JobStore  # noqa: E402
from tests.utils.wait_step import WAIT_STEP  # noqa: E402

HEADING = "## Job scheduling"
STORE_BYTES = 80 * 1024 * 1024


def run_jobs(settings: Settings, jobs: int, step: float) -> tuple[float, float]:
    """Queue `jobs` jobs, run them to the end; (wall seconds, sum of step seconds)."""
    store = JobStore(settings.jobs_db)
    runner = JobRunner(store, settings, kinds={"fine_tune": JobKind(train=WAIT_STEP)})
    runner.start()
    try:
        started = time.monotonic()
        ids = []
        for i in range(jobs):
            job = store.create(
                model_name=f"bench-{i}",
                base_model="none",
                spec={"seconds": step},
                jobs_dir=settings.jobs_dir,
            )
            job.job_dir.mkdir(parents=True)
            store.transition(job.id, "queued", allowed_from=("validating_files",), message="q")
            ids.append(job.id)
        runner.wake()
        while not all(store.require(i).terminal for i in ids):
            time.sleep(0.05)
        wall = time.monotonic() - started
    finally:
        runner.stop()
    done = [store.require(i) for i in ids]
    failed = [j for j in done if j.state != "succeeded"]
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed: {failed[0].error}")
    return wall, sum((j.metrics or {})["step_seconds"] for j in done)


def on_ray(gpus: int, jobs: int, step: float, work: Path) -> tuple[float, float]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "num_gpus": 0,
            "object_store_memory": STORE_BYTES,
            "include_dashboard": False,
        },
    )
    try:
        cluster.add_node(num_cpus=gpus, num_gpus=gpus, object_store_memory=STORE_BYTES)
        cluster.wait_for_nodes()
        settings = Settings(
            data_dir=work / f"ray-{gpus}",
            job_executor="ray",
            ray_address=cluster.address,
            job_poll_seconds=0.1,
        )
        return run_jobs(settings, jobs, step)
    finally:
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="jobs queued at once per run")
    parser.add_argument("--step", type=float, default=2.0, help="seconds each step holds a GPU")
    parser.add_argument("--max-load", type=float, default=float(os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()

    quiet = Quiet(args.max_load, max_outside=float("inf"))  # Ray's daemons are not our children
    load_start = quiet.load_start
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs = [("local executor", 1, None), ("ray, 1 fake GPU", 1, 1), ("ray, 2 fake GPUs", 2, 2)]
        for label, slots, gpus in runs:
            print(f"==> {label}: {args.jobs} jobs of {args.step:g} s", flush=True)
            if gpus is None:
                settings = Settings(data_dir=work / "local", job_poll_seconds=0.1)
                wall, steps = run_jobs(settings, args.jobs, args.step)
            else:
                wall, steps = on_ray(gpus, args.jobs, args.step, work)
            overhead = (wall * slots - steps) / args.jobs
            rows.append((label, wall, args.jobs * 60 / wall, overhead))
            print(
                f"    {wall:.1f} s, {args.jobs * 60 / wall:.1f} jobs/min, "
                f"overhead {overhead:.2f} s/job",
                flush=True,
            )
    load_end = quiet.finish().load_end

    lines = [
        HEADING,
        "",
        f"`scripts/bench_jobs.py`, {datetime.now(UTC):%Y-%m-%d}: {args.jobs} jobs queued at "
        f"once, each step holding its GPU for {args.step:g} s (tests/utils/wait_step.py); "
        f"{os.cpu_count()} cores, load average {load_start:.1f} at the start, "
        f"{load_end:.1f} at the end.",
        "",
        "| Executor | Wall time (s) | Jobs per minute | Overhead per job (s) |",
        "| --- | --- | --- | --- |",
        *(f"| {label} | {w:.1f} | {rate:.1f} | {o:.2f} |" for label, w, rate, o in rows),
        "",
        "Overhead per job: the GPU-slot time not spent in the step, (wall x slots - step "
        "time) / jobs (starting the actor and the step process, placing it, the store).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_section_if_quiet(args.out, HEADING, text, quiet)


if __name__ == "__main__":
    main()
