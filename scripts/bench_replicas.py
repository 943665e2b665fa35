"""API latency with 2 replicas vs 1: the same clients against one API process, then against
two replicas over one PostgreSQL database (round robin, as the cluster profile's proxy
spreads them).

    .venv/bin/python scripts/bench_replicas.py [--clients 8] [--seconds 20] [--out docs/benchmarks.md]

Both sides run on PostgreSQL (a throwaway cluster, tests/utils/postgres.py), one shared data
dir and one Chroma server, with the default base model provisioned; the clients loop over
requests that touch the store and the model catalogue without generating text
(`GET /listModels`, `GET /jobs`, `GET /health`), so the figure is the API's own overhead
per request, which is what replicas multiply (generation is the serving backend's: Ollama in
the cluster profile). Reported: requests/s, p50 and p95 latency, and the ratios 2 vs 1.

On a host with fewer cores than replicas plus clients the replicas share the cores with
the clients; the figure says what this host gives, printed with its core count. Writes the
"API replicas" section of docs/benchmarks.md only when the 1-minute load average at the
start is at or under the core count (at the end it is the benchmark's own); otherwise
prints the figures and says why.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import httpx  # noqa: E402
from bench_doc import Quiet, write_section_if_quiet  # noqa: E402  (scripts/ is on sys.path when run)

from api.config import Settings  # noqa: E402
from tests.utils.api_process import ApiProcess  # noqa: E402
from tests.utils.chroma import start_chroma_server  # noqa: E402
from tests.utils.postgres import PostgresCluster  # noqa: E402

HEADING = "## API replicas"
PATHS = ("/listModels", "/jobs", "/health")


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


def load(urls: list[str], clients: int, seconds: float) -> dict[str, float]:
    """`clients` threads, each sending to the replicas in turn, for `seconds`."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        nonlocal errors
        mine: list[float] = []
        failed = 0
        with httpx.Client(timeout=30) as http:
            turn = index
            while time.monotonic() < stop:
                url = urls[turn % len(urls)] + PATHS[turn % len(PATHS)]
                turn += 1
                started = time.perf_counter()
                try:
                    ok = http.get(url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    mine.append(time.perf_counter() - started)
                else:
                    failed += 1
        with lock:
            latencies.extend(mine)
            errors += failed

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    return {
        "requests_per_s": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "errors": errors,
    }


def run_side(replicas: int, url: str, chroma: str, data: Path, args) -> dict[str, float]:
    models = Settings().base_models_dir
    env = {"LLM_DATABASE_URL": url, "LLM_CHROMA_URL": chroma}
    apis = [ApiProcess(data, models, LLM_REPLICA_ID=f"bench-{i}", **env) for i in range(replicas)]
    try:
        for api in apis:
            api.start()
        load([a.url for a in apis], args.clients, 3)  # warm-up: first requests load things
        return load([a.url for a in apis], args.clients, args.seconds)
    finally:
        for api in apis:
            api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    quiet = Quiet(None, max_outside=float("inf"))  # PostgreSQL runs detached: start load only
    start_load = quiet.load_start
    cores = os.cpu_count() or 1
    print(
        f"==> API replicas: {args.clients} clients, {args.seconds:g} s a side, {cores} cores, "
        f"load {start_load:.2f}"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    pg = PostgresCluster()
    chroma_proc, chroma = start_chroma_server(work / "chroma")
    try:
        results = {}
        for replicas in (1, 2):
            data = work / f"data-{replicas}"
            data.mkdir()
            results[replicas] = run_side(replicas, pg.database(), chroma, data, args)
            r = results[replicas]
            print(
                f"    {replicas} replica(s): {r['requests_per_s']:.0f} requests/s, p50 "
                f"{r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, {r['errors']:.0f} errors"
            )
    finally:
        chroma_proc.terminate()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    one, two = results[1], results[2]
    end_load = os.getloadavg()[0]
    rows = "\n".join(
        f"| {n} | {r['requests_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
        f"{r['errors']:.0f} |"
        for n, r in results.items()
    )
    section = f"""{HEADING}

{args.clients} clients for {args.seconds:g} s a side against 1 API process, then 2 replicas
over one PostgreSQL database (round robin), asking `{"`, `".join(PATHS)}` in turn
(`scripts/bench_replicas.py`, {datetime.now(UTC):%Y-%m-%d}, {cores} cores, load
{start_load:.2f} at the start, {end_load:.2f} at the end, that one its own).

| Replicas | requests/s | p50 ms | p95 ms | errors |
|---|---|---|---|---|
{rows}

2 replicas vs 1: **{two["requests_per_s"] / one["requests_per_s"]:.2f}x** requests/s,
{two["p50_ms"] / one["p50_ms"]:.2f}x p50, {two["p95_ms"] / one["p95_ms"]:.2f}x p95.
"""
    print(section)
    # Gated on the load before it starts: at the end the load average is the benchmark's own
    # (its clients and replicas keep every core busy), which says nothing about other work.
    write_section_if_quiet(args.out, HEADING, section, quiet.finish())


if __name__ == "__main__":
    main()
