"""Load on loopback: API latency while a fine-tuning job trains, against the same calls idle.

    .venv/bin/python scripts/bench_load.py                      # writes the "Load" section
    .venv/bin/python scripts/bench_load.py --quick --out /tmp/b.md --json /tmp/b.json

Each side is a serving backend, optionally with the job steps' CPU priority after a colon
(`llamaserver:normal`; default `idle`, api/jobs/cpu_priority.py): the default sides are
`llamacpp` (before), `llamaserver:normal` (llama-server with jobs sharing the cores, as before
the priority change) and `llamaserver` (after).

The service runs as `make run` starts it (a uvicorn process on a loopback port, data in a
temporary directory, the real SmolLM2-135M GGUF and a tiny random Llama to train). Client
threads send a fixed mix of calls: `POST /generate` (SmolLM2, a few tokens), `GET
/listModels` and `GET /jobs`. The same calls run twice: first with no job (the baseline),
then while a fine-tuning job of the tiny model trains with a second job queued behind it.
A monitor samples the jobs and the training processes throughout.

Checks (exit status 1 when one fails): no 5xx, no connection error, every response valid,
never more than one training process or running job, the second job queued while the first
runs and started once it is cancelled. Writes p50/p95 per endpoint for both phases and the
ratio into the "Load" section of docs/benchmarks.md (other sections are kept).
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
from bench_doc import write_section  # noqa: E402  (scripts/ is on sys.path when run)

from api.models.provision import DEFAULT_BASE, provision_smollm2  # noqa: E402
from tests.utils.api_process import ApiProcess, processes_using  # noqa: E402
from tests.utils.tiny_model import TINY, build_tiny_base, qa_csv  # noqa: E402

HEADING = "## Load"
ENDPOINTS = ("POST /generate", "GET /listModels", "GET /jobs")
ACTIVE = ("validating_files", "queued", "running", "exporting")


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class Failures(list):
    def add(self, message: str) -> None:
        self.append(message)
        print("FAIL:", message, flush=True)


def call(client: httpx.Client, endpoint: str, max_tokens: int, seed: int) -> str | None:
    """One call; None when it is valid, else what is wrong with it."""
    if endpoint == "POST /generate":
        r = client.post(
            "/generate",
            json={
                "model": DEFAULT_BASE,
                "prompt": f"Count to {seed}.",
                "options": {"max_tokens": max_tokens, "seed": seed},
            },
        )
        if r.status_code != 200:
            return f"{endpoint}: {r.status_code} {r.text[:300]}"
        body = r.json()
        if (
            not isinstance(body.get("response"), str)
            or not 0 < body.get("completion_tokens", 0) <= max_tokens
        ):
            return f"{endpoint}: invalid body {body}"
        return None
    path = endpoint.split()[1]
    r = client.get(path)
    if r.status_code != 200:
        return f"{endpoint}: {r.status_code} {r.text[:300]}"
    body = r.json()
    if not isinstance(body.get("data"), list) or body.get("count") != len(body["data"]):
        return f"{endpoint}: invalid body {body}"
    if endpoint == "GET /listModels" and DEFAULT_BASE not in {m["name"] for m in body["data"]}:
        return f"{endpoint}: {DEFAULT_BASE} missing from {body}"
    return None


def phase(
    url: str, calls: int, threads: int, max_tokens: int, failures: Failures
) -> dict[str, list[float]]:
    """`calls` calls spread over `threads` client threads; latencies (ms) per endpoint."""
    latencies: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
    lock = threading.Lock()
    local = threading.local()

    def one(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=300)
        endpoint = ENDPOINTS[i % len(ENDPOINTS)]
        started = time.perf_counter()
        try:
            problem = call(local.client, endpoint, max_tokens, i)
        except httpx.HTTPError as exc:
            problem = f"{endpoint}: {type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            if problem:
                failures.add(problem)
            else:
                latencies[endpoint].append(elapsed)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(calls)))
    return latencies


class Monitor(threading.Thread):
    """Samples job states and training processes until stopped; records violations."""

    def __init__(self, url: str, data_dir: Path, failures: Failures):
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=url, timeout=60)
        self.data_dir, self.failures = data_dir, failures
        self.halt = threading.Event()
        self.samples = 0
        self.training_samples = 0  # samples with a training process alive

    def sample(self) -> dict[str, str]:
        jobs = {j["id"]: j["status"] for j in self.client.get("/jobs").json()["data"]}
        trainers = [p for p in processes_using(self.data_dir) if "api.finetune.recipe" in p]
        running = [i for i, s in jobs.items() if s in ("running", "exporting")]
        self.samples += 1
        self.training_samples += bool(trainers)
        if len(trainers) > 1 or len(running) > 1:
            self.failures.add(f"more than one job at a time: {running}, {trainers}")
        return jobs

    def run(self) -> None:
        while not self.halt.wait(0.25):
            try:
                self.sample()
            except httpx.HTTPError as exc:
                self.failures.add(f"monitor: {type(exc).__name__}: {exc}")


def wait_state(
    client: httpx.Client, job_id: str, states: tuple[str, ...], timeout: float = 300
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(f"/jobs/{job_id}").json()["status"]
        if state in states:
            return state
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} never reached {states}")


def submit(client: httpx.Client, name: str, steps: int) -> str:
    r = client.post(
        "/fine_tune_model",
        data={
            "model_name": name,
            "base_model": TINY,
            "export": "none",
            "max_steps": str(steps),
            "batch_size": "4",
            "learning_rate": "0.001",
            "checkpoint_steps": str(steps),
            "eval_rows": "2",
            "eval_max_new_tokens": "4",
        },
        files={"train_file": ("train.csv", qa_csv(40), "text/csv")},
    )
    if r.status_code != 202:
        raise RuntimeError(f"fine-tune submission failed: {r.status_code} {r.text}")
    return r.json()["id"]


def settle(url: str, timeout: float = 180) -> None:
    """Until the API's start-up device probe (seconds of matmuls) has finished."""
    deadline = time.monotonic() + timeout
    while httpx.get(f"{url}/health", timeout=10).json()["training"]["device"] == "probing":
        if time.monotonic() > deadline:
            raise TimeoutError("the API's device probe did not finish")
        time.sleep(0.2)


def run(args: argparse.Namespace, work: Path, side: str) -> dict[str, Any]:
    backend, _, priority = side.partition(":")
    failures = Failures()
    real = ROOT / "shared" / "models"
    provision_smollm2(real, cache_dir=ROOT / "shared" / "cache", say=lambda _: None)
    models = work / "models"
    models.mkdir()
    build_tiny_base(models, real / DEFAULT_BASE / "hf")
    (models / DEFAULT_BASE).symlink_to(real / DEFAULT_BASE)
    (work / "data").mkdir()
    api = ApiProcess(
        work / "data", models, LLM_BACKEND=backend, LLM_JOB_CPU_PRIORITY=priority or "idle"
    ).start()
    settle(api.url)
    load = [os.getloadavg()[0]]
    try:
        client = httpx.Client(base_url=api.url, timeout=300)
        call(client, "POST /generate", args.max_tokens, 0)  # load the model once, untimed
        before = args.requests // 2  # the baseline's other half runs after the loaded phase
        print(f"== baseline, first half: {before} calls, {args.threads} threads", flush=True)
        baseline = phase(api.url, before, args.threads, args.max_tokens, failures)
        load.append(os.getloadavg()[0])

        first = submit(client, "load-first", args.steps)
        second = submit(client, "load-second", args.steps)
        monitor = Monitor(api.url, api.data_dir, failures)
        monitor.start()
        wait_state(client, first, ("running",))
        # training starts once the recipe process has loaded torch: wait for its first step
        deadline = time.monotonic() + 300
        while client.get(f"/jobs/{first}").json()["progress"].get("step", 0) < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("the first job never took a training step")
            time.sleep(0.2)
        print(f"== under training: {args.requests} calls, {args.threads} threads", flush=True)
        training = phase(api.url, args.requests, args.threads, args.max_tokens, failures)
        load.append(os.getloadavg()[0])
        states = {j: client.get(f"/jobs/{j}").json()["status"] for j in (first, second)}
        if states != {first: "running", second: "queued"}:
            failures.add(
                f"after the loaded phase the jobs are {states}: the first should still "
                "be running (raise --steps) and the second queued"
            )
        step = client.get(f"/jobs/{first}").json()["progress"].get("step")
        # the queue moves on: cancelling the first starts the second
        client.post(f"/jobs/{first}/cancel")
        if wait_state(client, second, ("running", "failed", "succeeded")) != "running":
            failures.add("the second job did not start after the first was cancelled")
        client.post(f"/jobs/{second}/cancel")
        wait_state(client, second, ("cancelled",))
        monitor.halt.set()
        monitor.join()
        if monitor.training_samples == 0:
            failures.add("the monitor never saw a training process")
        deadline = time.monotonic() + 60
        while any("api.finetune.recipe" in p for p in processes_using(api.data_dir)):
            if time.monotonic() > deadline:
                failures.add("a cancelled job's training process is still running")
                break
            time.sleep(0.2)
        after = args.requests - before
        print(f"== baseline, second half: {after} calls, {args.threads} threads", flush=True)
        for endpoint, values in phase(
            api.url, after, args.threads, args.max_tokens, failures
        ).items():
            baseline[endpoint] += values
        load.append(os.getloadavg()[0])
    finally:
        api.stop()
    return {
        "baseline": baseline,
        "training": training,
        "failures": failures,
        "load": load,
        "steps_during_load": step,
        "samples": monitor.samples,
        "training_samples": monitor.training_samples,
    }


def summary(res: dict[str, Any]) -> dict[str, dict[str, float]]:
    out = {}
    for endpoint in ENDPOINTS:
        row = {}
        for side in ("baseline", "training"):
            values = res[side][endpoint]
            row[f"{side}_n"] = len(values)
            row[f"{side}_p50"] = statistics.median(values) if values else float("nan")
            row[f"{side}_p95"] = percentile(values, 95) if values else float("nan")
        row["p50_ratio"] = row["training_p50"] / row["baseline_p50"]
        row["p95_ratio"] = row["training_p95"] / row["baseline_p95"]
        out[endpoint] = row
    return out


def section(
    args: argparse.Namespace,
    runs: dict[str, dict[str, Any]],
    started: datetime,
) -> str:
    """The Load section: one table per serving backend, then /generate after vs before."""
    lines = [
        HEADING,
        "",
        f"`scripts/bench_load.py`, {started:%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores. Per serving backend, in turn: the API as `make "
        f"run` starts it on loopback (llama.cpp with all cores); {args.threads} client threads, "
        f"{args.requests} calls per side in a fixed rotation of the three endpoints; "
        f"`/generate` on SmolLM2-135M Q4_1 with `max_tokens` {args.max_tokens}. Baseline: no "
        "job, half its calls before the loaded phase and half after (so that drift on the "
        "shared machine falls on both sides). Under training: a fine-tuning job of a tiny "
        "random Llama (batch 4) trains in its own process with a second job queued, at the "
        "CPU priority the side names (`idle`, the default: the job takes only the CPU time "
        "serving leaves; `normal`: it shares the cores, as before; api/jobs/cpu_priority.py). "
        "Backend `llamacpp` (before) answers one request at a time in the API's process; "
        "`llamaserver` (after, the default) has parallel slots in a child process.",
    ]
    for side, res in runs.items():
        lines += _backend_table(side, res)
    if {"llamacpp", "llamaserver"} <= runs.keys():
        before, after = summary(runs["llamacpp"]), summary(runs["llamaserver"])
        g = "POST /generate"
        lines += [
            "",
            "**`POST /generate`, llamaserver (after) vs llamacpp (before): "
            f"{after[g]['baseline_p50'] / before[g]['baseline_p50']:.2f}x p50 and "
            f"{after[g]['baseline_p95'] / before[g]['baseline_p95']:.2f}x p95 idle; "
            f"{after[g]['training_p50'] / before[g]['training_p50']:.2f}x p50 and "
            f"{after[g]['training_p95'] / before[g]['training_p95']:.2f}x p95 while training** "
            "(below 1: faster after).",
        ]
    if {"llamaserver", "llamaserver:normal"} <= runs.keys():
        idle, normal = summary(runs["llamaserver"]), summary(runs["llamaserver:normal"])
        g = "POST /generate"
        lines += [
            "",
            "**`POST /generate` on llamaserver while a job trains, its ratio to the idle "
            f"baseline: {normal[g]['p50_ratio']:.2f}x p50 and {normal[g]['p95_ratio']:.2f}x "
            f"p95 with the job at normal priority, {idle[g]['p50_ratio']:.2f}x and "
            f"{idle[g]['p95_ratio']:.2f}x at idle priority** (the job at idle reached step "
            f"{runs['llamaserver']['steps_during_load']}, at normal step "
            f"{runs['llamaserver:normal']['steps_during_load']}).",
        ]
    failures = sum(len(res["failures"]) for res in runs.values())
    samples = sum(res["samples"] for res in runs.values())
    training = sum(res["training_samples"] for res in runs.values())
    lines += [
        "",
        f"Errors (5xx, connection errors, invalid bodies): {failures}. Jobs "
        f"sampled {samples} times ({training} with a training "
        "process alive): never more than one running; the second job stayed queued "
        "until the first was cancelled, then started. With "
        f"{args.requests // len(ENDPOINTS)} calls per endpoint and side, p95 is about the "
        "second-slowest call (compare the rows of one run).",
    ]
    return "\n".join(lines) + "\n"


def _backend_table(side: str, res: dict[str, Any]) -> list[str]:
    load = ", ".join(f"{x:.1f}" for x in res["load"])
    backend, _, priority = side.partition(":")
    lines = [
        "",
        f"Backend `{backend}`, the job at {priority or 'idle'} priority (1-minute load "
        f"average at its start and after each of its three phases: {load}; the training job "
        f"was at step {res['steps_during_load']} when the loaded phase ended):",
        "",
        "| Endpoint | calls | baseline p50 ms | baseline p95 ms | training p50 ms "
        "| training p95 ms | p50 ratio | p95 ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for endpoint, r in summary(res).items():
        lines.append(
            f"| `{endpoint}` | {r['baseline_n']} + {r['training_n']} | "
            f"{r['baseline_p50']:.0f} | {r['baseline_p95']:.0f} | "
            f"{r['training_p50']:.0f} | {r['training_p95']:.0f} | "
            f"{r['p50_ratio']:.2f}x | {r['p95_ratio']:.2f}x |"
        )
    return lines


def cool_down(max_load: float, timeout: float = 300) -> None:
    """Wait (up to `timeout` s) until the 1-minute load average is at most `max_load`: the
    previous side's training leaves it above the core count for a minute or two."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run: a CI smoke")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--requests", type=int, help="calls per side (default 60; quick 18)")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument(
        "--backends",
        help="sides in turn: BACKEND[:idle|normal], the job's CPU priority (default "
        "llamacpp,llamaserver:normal,llamaserver; quick: llamaserver)",
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=float(os.cpu_count() or 1),
        help="write the section only when the load average at each backend's start is at most this",
    )
    parser.add_argument(
        "--steps",
        type=int,
        help="steps of each training job (default 3000; quick 1000): more than the phase lasts",
    )
    args = parser.parse_args(argv)
    args.requests = args.requests or (18 if args.quick else 60)
    args.steps = args.steps or (1000 if args.quick else 3000)
    started = datetime.now(UTC)
    default = "llamaserver" if args.quick else "llamacpp,llamaserver:normal,llamaserver"
    sides = (args.backends or default).split(",")
    runs: dict[str, dict[str, Any]] = {}
    for i, side in enumerate(sides):
        if i and not args.quick:  # the last side's training raised the load average
            cool_down(args.max_load)
        print(f"==> backend {side}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            runs[side] = run(args, Path(tmp), side)
    text = section(args, runs, started)
    print(text, flush=True)
    start_loads = [res["load"][0] for res in runs.values()]
    if args.quick or max(start_loads) <= args.max_load:
        write_section(args.out, HEADING, text)
    else:
        print(
            f"NOT written to {args.out}: the load average at a backend's start "
            f"({', '.join(f'{x:.1f}' for x in start_loads)}) exceeded {args.max_load:g}, so "
            "the figures are noise (the run's own training load is expected and not counted)."
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    backend: {
                        "summary": summary(res),
                        "failures": res["failures"],
                        "samples": res["samples"],
                        "training_samples": res["training_samples"],
                        "latencies": {k: res[k] for k in ("baseline", "training")},
                    }
                    for backend, res in runs.items()
                },
                indent=1,
            )
        )
    failures = sum(len(res["failures"]) for res in runs.values())
    if failures:
        print(f"{failures} failure(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
