"""Serving benchmark: the API on backend `llamaserver` against llama-server called directly
(the same binary, GGUF and command line) and against the embedded backend (`llamacpp`, the
old in-process one), in one run. `scripts/bench.py` runs it and writes the "Serving" section
of docs/benchmarks.md (only on a quiet machine); run alone, it prints the table.

    .venv/bin/python scripts/bench_serving.py            # a few minutes on 2 cores
    .venv/bin/python scripts/bench_serving.py --quick    # tiny sizes (a smoke)

All three sides are started first and stay up; each API is used only after its start-up
work has finished (`/health` no longer says the training device is `probing`: that probe
times matmuls for seconds after start-up and would otherwise share the cores with the
first requests). The sides then take turns, request by request, so drift falls on all.

Cases:
1. decode tokens/s and time to first token (TTFT) of one streamed reply: `POST /generate`
   vs the same prompt straight to llama-server's `/v1/chat/completions` (prompt cache on for
   both, as the API uses it for requests without a seed; a different prompt per round);
2. warm vs cold TTFT with a ~300-token system prompt: the second request shares it, so
   llama-server's prompt cache serves it; the embedded backend evaluates every prompt;
3. 4 concurrent requests vs the same 4 one after another: aggregate tokens/s, for all three
   sides (llama-server direct's ratio is what the parallel slots give on this host).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.config import Settings  # noqa: E402
from api.serving.llama_children import Child, free_port, start_child  # noqa: E402
from api.serving.llama_server import LlamaServer  # noqa: E402

BASE = "smollm2-135m"
PROMPT = "Write the numbers from one to two hundred in words, separated by commas."
FILLER = (
    "You are the support assistant of a hardware shop. Be precise, polite and brief. "
    "Never invent prices; say when you do not know. "
)
SIDES = ("direct", "llamaserver", "llamacpp")
LABELS = {
    "direct": "llama-server direct",
    "llamaserver": "API, backend llamaserver",
    "llamacpp": "API, backend llamacpp (old)",
}


def _timing(start: float, first: float, end: float, tokens: int) -> dict[str, float]:
    decode = (tokens - 1) / (end - first) if tokens > 1 and end > first else 0.0
    return {"ttft_ms": (first - start) * 1000, "decode_tps": decode, "tokens": tokens}


class Api:
    """The API in a uvicorn process on loopback, with one backend, as `make run` starts it."""

    def __init__(self, backend: str, work: Path, threads: int, parallel: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / f"api-{backend}.log"
        env = {
            **os.environ,
            "LLM_BACKEND": backend,
            "LLM_DATA_DIR": str(work / backend),
            "LLM_BASE_MODELS_DIR": str(ROOT / "shared" / "models"),
            "LLM_THREADS": str(threads),
            "LLM_PARALLEL": str(parallel),
            "HF_HUB_OFFLINE": "1",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "api.main:app",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.wait_settled(backend)

    def wait_settled(self, backend: str) -> None:
        """Until /health answers and the start-up device probe has finished."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the API ({backend}) exited during start-up:\n{tail}")
            try:
                r = httpx.get(f"{self.url}/health", timeout=2)
                if r.status_code == 200 and r.json()["training"]["device"] != "probing":
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the API ({backend}) did not settle in 180 s")

    def stream(self, prompt: str, max_tokens: int, system: str | None = None) -> dict[str, float]:
        body: dict[str, Any] = {
            "model": BASE,
            "prompt": prompt,
            "stream": True,
            "options": {"max_tokens": max_tokens, "temperature": 0.0},
        }
        if system:
            body["system"] = system
        start = time.perf_counter()
        first = None
        last: dict[str, Any] = {}
        with httpx.stream("POST", f"{self.url}/generate", json=body, timeout=600) as r:
            for line in r.iter_lines():
                if not line:
                    continue
                part = json.loads(line)
                if first is None and part.get("response"):
                    first = time.perf_counter()
                last = part
        end = time.perf_counter()
        if "error" in last:
            raise RuntimeError(last["error"])
        return _timing(start, first or end, end, int(last.get("completion_tokens") or 0))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Direct:
    """llama-server started with the backend's own command line, asked as its users would:
    streaming `/v1/chat/completions` (the server applies the GGUF's chat template; prompt
    cache on, its default)."""

    def __init__(self, settings: Settings, work: Path):
        self.backend = LlamaServer(settings)
        gguf = settings.models_dir / BASE / "model.gguf"
        spec = self.backend._spec(gguf, [])
        self.child: Child = start_child(spec, self.backend._spawner, work / "direct.log", 120)

    def stream(self, prompt: str, max_tokens: int, system: str | None = None) -> dict[str, float]:
        messages = [{"role": "user", "content": prompt}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        body = {
            "messages": messages,
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        start, first, tokens = time.perf_counter(), None, 0
        url = f"{self.child.url}/v1/chat/completions"
        with httpx.stream("POST", url, json=body, timeout=600) as r:
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    first = first or time.perf_counter()
                    tokens += 1  # one delta per token
        end = time.perf_counter()
        return _timing(start, first or end, end, tokens)

    def close(self) -> None:
        self.child.stop()
        self.backend.close()


Side = Api | Direct


def concurrency(side: Side, n: int, max_tokens: int, tag: str) -> dict[str, float]:
    prompts = [f"{PROMPT} ({tag} {i})" for i in range(n)]
    start = time.perf_counter()
    seq = sum(side.stream(p, max_tokens)["tokens"] for p in prompts)
    seq_tps = seq / (time.perf_counter() - start)
    prompts = [f"{PROMPT} ({tag} {i}, together)" for i in range(n)]
    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        par = sum(r["tokens"] for r in pool.map(lambda p: side.stream(p, max_tokens), prompts))
    par_tps = par / (time.perf_counter() - start)
    return {"sequential_tps": seq_tps, "concurrent_tps": par_tps, "ratio": par_tps / seq_tps}


def warm_cold(side: Side, words: int, tag: str) -> tuple[float, float]:
    system = f"Session {tag} {time.time_ns()}. " + (FILLER * (words // 25 + 1))
    cold = side.stream("What do you sell?", 4, system=system)["ttft_ms"]
    warm = side.stream("Do you open on Sundays?", 4, system=system)["ttft_ms"]
    return cold, warm


def _turns(rounds: int, fn: Callable[[str, int], None]) -> None:
    """fn(side, round) for every side, each round starting with the next side."""
    for i in range(rounds):
        for k in range(len(SIDES)):
            fn(SIDES[(i + k) % len(SIDES)], i)


def run(quick: bool = False, threads: int | None = None, parallel: int = 4) -> dict[str, Any]:
    threads = threads or os.cpu_count() or 2
    rounds, max_tokens, conc_rounds = (2, 16, 1) if quick else (10, 64, 3)
    res: dict[str, Any] = {
        "threads": threads,
        "parallel": parallel,
        "max_tokens": max_tokens,
        "rounds": rounds,
        "load_average": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        settings = Settings(
            data_dir=work / "direct",
            base_models_dir=ROOT / "shared" / "models",
            threads=threads,
            parallel=parallel,
        )
        sides: dict[str, Side] = {}
        try:
            print("==> starting llama-server direct and the API on both backends", flush=True)
            sides["direct"] = Direct(settings, work)
            for backend in ("llamaserver", "llamacpp"):
                sides[backend] = Api(backend, work, threads, parallel)
            for side in sides.values():
                side.stream("Hi", 2)  # load the model
            single: dict[str, list[dict[str, float]]] = {s: [] for s in SIDES}
            print(f"==> one streamed reply: {rounds} rounds x {len(SIDES)} sides", flush=True)
            _turns(
                rounds,
                lambda s, i: single[s].append(sides[s].stream(f"{PROMPT} [{i}]", max_tokens)),
            )
            cold_warm: dict[str, list[tuple[float, float]]] = {s: [] for s in SIDES}
            print("==> warm vs cold with a 300-token system prompt", flush=True)
            _turns(rounds, lambda s, i: cold_warm[s].append(warm_cold(sides[s], 300, f"{s}{i}")))
            conc: dict[str, list[dict[str, float]]] = {s: [] for s in SIDES}
            print(f"==> 4 concurrent vs 4 sequential: {conc_rounds} rounds", flush=True)
            _turns(
                conc_rounds,
                lambda s, i: conc[s].append(concurrency(sides[s], 4, max_tokens, f"{s}{i}")),
            )
        finally:
            for side in sides.values():
                side.close()
    res["load_average_end"] = os.getloadavg()
    for s in SIDES:
        rows = single[s]
        cold = statistics.median(c for c, _ in cold_warm[s])
        warm = statistics.median(w for _, w in cold_warm[s])
        res[s] = {
            "decode_tps": statistics.median(r["decode_tps"] for r in rows),
            "ttft_ms": statistics.median(r["ttft_ms"] for r in rows),
            "tokens": statistics.median(r["tokens"] for r in rows),
            "decode_each": [round(r["decode_tps"], 1) for r in rows],
            "cold_ttft_ms": cold,
            "warm_ttft_ms": warm,
            "warm_cold": warm / cold,
            "sequential_tps": statistics.median(c["sequential_tps"] for c in conc[s]),
            "concurrent_tps": statistics.median(c["concurrent_tps"] for c in conc[s]),
            "concurrency": statistics.median(c["ratio"] for c in conc[s]),
        }
    return res


def table(res: dict[str, Any]) -> list[str]:
    rows = [
        ("decode tokens/s (one reply)", "decode_tps", "{:.1f}"),
        ("TTFT ms (one reply)", "ttft_ms", "{:.0f}"),
        ("cold TTFT ms, 300-token system prompt", "cold_ttft_ms", "{:.0f}"),
        ("warm TTFT ms, same system prompt", "warm_ttft_ms", "{:.0f}"),
        ("warm / cold", "warm_cold", "{:.2f}x"),
        ("4 sequential: tokens/s", "sequential_tps", "{:.1f}"),
        ("4 concurrent: tokens/s", "concurrent_tps", "{:.1f}"),
        ("concurrent / sequential", "concurrency", "{:.2f}x"),
    ]
    out = ["| measure | " + " | ".join(LABELS[s] for s in SIDES) + " |"]
    out.append("| --- |" + " --- |" * len(SIDES))
    for label, key, fmt in rows:
        out.append(f"| {label} | " + " | ".join(fmt.format(res[s][key]) for s in SIDES) + " |")
    return out


def ratios(res: dict[str, Any]) -> dict[str, float]:
    api, direct = res["llamaserver"], res["direct"]
    return {
        "decode": api["decode_tps"] / direct["decode_tps"],
        "ttft": api["ttft_ms"] / direct["ttft_ms"],
        "warm_cold": api["warm_cold"],
        "concurrency": api["concurrency"],
        "concurrency_direct": direct["concurrency"],
        "concurrency_vs_old": api["concurrent_tps"] / res["llamacpp"]["concurrent_tps"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    res = run(args.quick, args.threads)
    print("\n" + "\n".join(table(res)))
    print(f"\nratios {json.dumps({k: round(v, 3) for k, v in ratios(res).items()})}")
    print(f"load average at start {res['load_average']}, end {res['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
