"""Serving benchmark: backend `llamaserver` against llama-server called directly and against
the embedded backend (`llamacpp`), one run, same GGUF and settings. Prints a table (and
writes --json); it does not write docs/benchmarks.md (figures from a busy machine).

    .venv/bin/python scripts/bench_serving.py            # a few minutes on 2 cores
    .venv/bin/python scripts/bench_serving.py --quick    # tiny sizes (a smoke)

Cases:
1. decode tokens/s and time to first token through POST /generate (streaming) vs the same
   prompt straight to llama-server's /completion;
2. warm vs cold TTFT with a ~300-token system prompt (the second request shares it, so
   llama-server's prompt cache serves it; the embedded backend evaluates every prompt);
3. 4 concurrent /generate vs the same 4 one after another: aggregate tokens/s.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.config import Settings  # noqa: E402
from api.serving.llama_children import start_child  # noqa: E402
from api.serving.llama_server import LlamaServer  # noqa: E402

BASE = "smollm2-135m"
PROMPT = "Write the numbers from one to two hundred in words, separated by commas."
FILLER = (
    "You are the support assistant of a hardware shop. Be precise, polite and brief. "
    "Never invent prices; say when you do not know. "
)


def free_port() -> int:
    from api.serving.llama_children import free_port as port

    return port()


class Api:
    """The API in a uvicorn process on loopback, with one backend."""

    def __init__(self, backend: str, work: Path, threads: int, parallel: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
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
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"the API ({backend}) did not start")

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


def _timing(start: float, first: float, end: float, tokens: int) -> dict[str, float]:
    decode = tokens / (end - first) if tokens > 1 and end > first else 0.0
    return {"ttft_ms": (first - start) * 1000, "decode_tps": decode, "tokens": tokens}


def direct(settings: Settings, work: Path, runs: int, max_tokens: int) -> list[dict[str, float]]:
    """The same prompt straight to a llama-server with the backend's own command line."""
    backend = LlamaServer(settings)
    gguf = settings.models_dir / BASE / "model.gguf"
    child = start_child(backend._spec(gguf, []), backend._spawner, work / "direct.log", 120)
    try:
        messages = [{"role": "user", "content": PROMPT}]
        prompt = httpx.post(f"{child.url}/apply-template", json={"messages": messages}).json()
        out = []
        for _ in range(runs):
            body = {
                "prompt": prompt["prompt"],
                "stream": True,
                "n_predict": max_tokens,
                "temperature": 0.0,
                "cache_prompt": False,
            }
            start, first, tokens = time.perf_counter(), None, 0
            with httpx.stream("POST", f"{child.url}/completion", json=body, timeout=600) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        part = json.loads(line[6:])
                        if first is None and part.get("content"):
                            first = time.perf_counter()
                        tokens = part.get("tokens_predicted", tokens)
            end = time.perf_counter()
            out.append(_timing(start, first or end, end, tokens))
        return out
    finally:
        child.stop()
        backend.close()


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def concurrency(api: Api, n: int, max_tokens: int) -> dict[str, float]:
    prompts = [f"{PROMPT} ({i})" for i in range(n)]
    start = time.perf_counter()
    seq = sum(api.stream(p, max_tokens)["tokens"] for p in prompts)
    seq_tps = seq / (time.perf_counter() - start)
    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        par = sum(r["tokens"] for r in pool.map(lambda p: api.stream(p, max_tokens), prompts))
    par_tps = par / (time.perf_counter() - start)
    return {"sequential_tps": seq_tps, "concurrent_tps": par_tps, "ratio": par_tps / seq_tps}


def warm_cold(api: Api, runs: int, words: int) -> dict[str, float]:
    cold, warm = [], []
    for i in range(runs):
        system = f"Session {i} {time.time_ns()}. " + (FILLER * (words // 25 + 1))
        cold.append(api.stream("What do you sell?", 4, system=system)["ttft_ms"])
        warm.append(api.stream("Do you open on Sundays?", 4, system=system)["ttft_ms"])
    return {
        "cold_ttft_ms": statistics.median(cold),
        "warm_ttft_ms": statistics.median(warm),
        "ratio": statistics.median(warm) / statistics.median(cold),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    runs, max_tokens = (2, 16) if args.quick else (5, 64)
    results: dict[str, Any] = {"load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        settings = Settings(
            data_dir=work / "direct",
            base_models_dir=ROOT / "shared" / "models",
            threads=args.threads,
            parallel=4,
        )
        print("==> llama-server direct", flush=True)
        results["direct"] = direct(settings, work, runs, max_tokens)
        for backend in ("llamaserver", "llamacpp"):
            print(f"==> API on backend {backend}", flush=True)
            api = Api(backend, work, args.threads, parallel=4)
            try:
                api.stream("Hi", 2)  # load the model
                results[backend] = {
                    "single": [api.stream(PROMPT, max_tokens) for _ in range(runs)],
                    "warm_cold": warm_cold(api, runs, 300),
                    "concurrency": concurrency(api, 4, max_tokens),
                }
            finally:
                api.close()
    results["load_average_end"] = os.getloadavg()
    d, ls, lc = results["direct"], results["llamaserver"], results["llamacpp"]
    print("\n| measure | llama-server direct | API llamaserver | API llamacpp (old) |")
    print("| --- | --- | --- | --- |")
    for key, label in (("decode_tps", "decode tokens/s"), ("ttft_ms", "TTFT ms")):
        cells = [median(d, key), median(ls["single"], key), median(lc["single"], key)]
        print(f"| {label} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    for key in ("cold_ttft_ms", "warm_ttft_ms", "ratio"):
        print(
            f"| 300-token system prompt: {key} | - | "
            f"{ls['warm_cold'][key]:.2f} | {lc['warm_cold'][key]:.2f} |"
        )
    for key in ("sequential_tps", "concurrent_tps", "ratio"):
        print(
            f"| 4 requests: {key} | - | "
            f"{ls['concurrency'][key]:.2f} | {lc['concurrency'][key]:.2f} |"
        )
    print(f"\nload average at start {results['load_average']}, end {results['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
