"""How fast this CPU multiplies in bf16 compared with fp32: measured once per host, cached.

CPUs with AMX or AVX512-BF16 (Sapphire Rapids and later, Zen 4 and later) run bf16 matmuls
several times faster than fp32; on the others torch emulates bf16 and it is slower. Flags alone
do not say how much (AMX needs oneDNN's kernels, thread count matters), so the training device
probe times one matmul shape in both dtypes, in its child process, and keeps the result in
`shared/cache/cpu-matmul.json` keyed by CPU model, flags, torch version and thread count.
"""

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from api.config import REPO_ROOT

CACHE = REPO_ROOT / "shared" / "cache" / "cpu-matmul.json"
SIZE = 512  # big enough for the fast kernels; emulated bf16 (50x slower) still takes ~1 s


def host_key(threads: int, torch_version: str) -> str:
    model, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")) and not flags:
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    raw = f"{model}|{flags}|{torch_version}|{threads}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _gflops(dtype: Any, seconds: float = 0.3) -> float:
    import torch

    a = torch.randn(SIZE, SIZE).to(dtype)
    b = torch.randn(SIZE, SIZE).to(dtype)
    a @ b  # warm-up: kernel selection, page faults
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or runs < 2:
        a @ b
        runs += 1
    return 2 * SIZE**3 * runs / elapsed / 1e9


def measure(cache: Path = CACHE) -> dict[str, float]:
    """{"fp32_gflops", "bf16_gflops", "bf16_speedup"} for this host (cached)."""
    import torch

    key = host_key(torch.get_num_threads(), torch.__version__)
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(key), dict):
        return known[key]
    fp32, bf16 = _gflops(torch.float32), _gflops(torch.bfloat16)
    found = {
        "fp32_gflops": round(fp32, 1),
        "bf16_gflops": round(bf16, 1),
        "bf16_speedup": round(bf16 / fp32, 2),
    }
    try:  # best effort: a read-only checkout measures again next time
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**known, key: found}, indent=1))
        tmp.replace(cache)
    except OSError:
        pass
    return found
