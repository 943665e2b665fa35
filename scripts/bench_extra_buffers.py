"""llama.cpp's extra buffer types on and off: prompt and decode speed of SmolLM2-135M.

    .venv/bin/python scripts/bench_extra_buffers.py [--out docs/benchmarks.md] [--quick]

On CPUs with AMX the service loads models without extra buffer types (they crash there,
see api/serving/cpu.py); elsewhere it keeps them on. This measures what that costs: the
same GGUF (as provisioned, Q4_1, and as the export's default Q4_K_M plus Q4_0, the types
llama.cpp repacks) loaded both ways in one process, rounds alternating, medians of
prompt-evaluation and decode tokens/s. On a host with AMX only "off" is safe and "on" is
not run (unless --force-on). Writes the "llama.cpp extra buffer types" section.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_doc import write_section  # noqa: E402  (scripts/ is on sys.path when run)

from api.finetune.export import CONVERT_HF, _converter, quantize  # noqa: E402
from api.serving.cpu import CRASHING_FEATURES, ExtraBuffersChoice, host_cpu  # noqa: E402
from api.serving.llama_model import open_llama  # noqa: E402

MODEL = ROOT / "shared" / "models" / "smollm2-135m"
HEADING = "## llama.cpp extra buffer types"
PROMPT = ("Summarise the following policy for a new employee in three sentences. " * 12).strip()


def ggufs(work: Path, quick: bool) -> dict[str, Path]:
    files = {"Q4_1 (provisioned)": MODEL / "model.gguf"}
    if quick:
        return files
    f16 = work / "f16.gguf"
    _converter(CONVERT_HF, str(MODEL / "hf"), "--outfile", str(f16), "--outtype", "f16")
    for kind in ("Q4_K_M", "Q4_0"):  # the types llama.cpp repacks, quantised as the export does
        quantize(f16, work / f"{kind}.gguf", kind)
        files[kind] = work / f"{kind}.gguf"
    return files


def measure(path: Path, enabled: bool, decode_tokens: int) -> tuple[float, float]:
    """(prompt tokens/s, decode tokens/s) for one fresh load."""
    choice = ExtraBuffersChoice(enabled, "on" if enabled else "off", "benchmark")
    llm = open_llama(
        path, extra_buffers=choice, n_ctx=1024, n_threads=os.cpu_count(), verbose=False
    )
    try:
        tokens = llm.tokenize(PROMPT.encode())
        llm.eval(tokens[:8])  # warm the kernels
        llm.reset()
        start = time.perf_counter()
        llm.eval(tokens)
        prompt_rate = len(tokens) / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(decode_tokens):
            token = llm.sample(temp=0.0)
            llm.eval([token])
        decode_rate = decode_tokens / (time.perf_counter() - start)
        return prompt_rate, decode_rate
    finally:
        llm.close()


def run(
    files: dict[str, Path], rounds: int, decode_tokens: int, sides: list[bool]
) -> dict[str, dict[bool, tuple[float, float]]]:
    out: dict[str, dict[bool, tuple[float, float]]] = {}
    for name, path in files.items():
        samples: dict[bool, list[tuple[float, float]]] = {side: [] for side in sides}
        for i in range(rounds):
            for side in sides if i % 2 == 0 else sides[::-1]:
                samples[side].append(measure(path, side, decode_tokens))
        out[name] = {
            side: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v))
            for side, v in samples.items()
        }
        print(f"{name}: {out[name]}", flush=True)
    return out


def section(
    res: dict[str, dict[bool, tuple[float, float]]],
    load: list[float],
    rounds: int,
    decode_tokens: int,
) -> str:
    cpu = host_cpu()
    lines = [
        HEADING,
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `scripts/bench_extra_buffers.py` on "
        f"{cpu.model} ({os.cpu_count()} cores, {platform.machine()}), load average "
        f"{load[0]:.1f} before and {load[1]:.1f} after; CPU features: "
        f"{', '.join(cpu.reported) or 'none reported'}. Medians of {rounds} fresh loads per "
        f"side, alternating; prompt: {len(PROMPT.split())} words, decode: {decode_tokens} "
        "greedy tokens, all cores.",
        "",
        "| GGUF | prompt tok/s off | prompt tok/s on | decode tok/s off | decode tok/s on "
        "| on / off (prompt, decode) |",
        "|---|---|---|---|---|---|",
    ]
    for name, sides in res.items():
        off = sides[False]
        on = sides.get(True)
        if on is None:
            lines.append(
                f"| {name} | {off[0]:.0f} | not run (crashes here) | {off[1]:.1f} | not run | - |"
            )
        else:
            lines.append(
                f"| {name} | {off[0]:.0f} | {on[0]:.0f} | {off[1]:.1f} | {on[1]:.1f} | "
                f"{on[0] / off[0]:.2f}x, {on[1] / off[1]:.2f}x |"
            )
    lines += [
        "",
        "`auto` keeps extra buffers on wherever no crashing CPU feature is present "
        "(they speed up the types llama.cpp repacks, Q4_0 and on some CPUs Q4_K, and "
        "leave the others within noise) and turns them off on AMX hosts, where `on` "
        "is not safe.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="provisioned GGUF, 1 round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument(
        "--force-on",
        action="store_true",
        help="also measure `on` where a crashing CPU feature is present",
    )
    args = parser.parse_args(argv)
    rounds, decode = (1, 8) if args.quick else (args.rounds, args.decode_tokens)
    risky = CRASHING_FEATURES.keys() & host_cpu().flags
    sides = [False] if risky and not args.force_on else [False, True]
    load = [os.getloadavg()[0]]
    print(
        f"==> load average {load[0]:.2f}; extra buffers measured: {['off', 'on'][: len(sides)]}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        res = run(ggufs(Path(tmp), args.quick), rounds, decode, sides)
    load.append(os.getloadavg()[0])
    write_section(args.out, HEADING, section(res, load, rounds, decode))
    print(f"==> wrote the {HEADING[3:]!r} section of {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
