"""Benchmarks: each case against its baseline, in this one run, written to docs/benchmarks.md.

    .venv/bin/python scripts/bench.py            # full: a few minutes on 2 cores
    .venv/bin/python scripts/bench.py --quick    # every case at tiny sizes (a CI smoke)
    .venv/bin/python scripts/bench.py --only finetune,serving --out /tmp/bench

Cases (the baseline in brackets):
1. fine-tuning: trained tokens/s (non-padding tokens fed), peak memory, MFU and the loss per
   step [plain TRL SFTTrainer + PEFT with TRL's defaults]; each side in its own process
   (scripts/bench_finetune.py), sides alternated, medians of the rounds. On CPU with SmolLM2-135M;
   with CUDA, a 7B-shaped 4-bit run as well.
2. serving (scripts/bench_serving.py): decode tokens/s and time to first token through POST
   /generate, warm vs cold TTFT with a long system prompt, 4 concurrent vs sequential
   [llama-server called directly with the same command line; the old in-process backend beside].
3. retrieval: scripts/bench_retrieval.py, run from here.
4. export: scripts/bench_export.py, run from here (--quick keeps the measured section).

Writes OUT/benchmarks.md (the sections of this run replace those of an earlier one; other
sections are kept) and OUT/benchmarks.png (loss curves and ratios vs baseline, drawn with
Pillow; the ratios and losses of cases not run this time come from OUT/benchmarks.json, which
each quiet run updates). Timings on a shared machine are noisy: compare the rows of one run, not runs.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import bench_finetune  # noqa: E402
import gpu_bench  # noqa: E402
from bench_doc import Quiet  # noqa: E402

from api.finetune.precision import BF16_MIN_SPEEDUP  # noqa: E402  (the recipe's threshold)

MODELS = ROOT / "shared" / "models"
BASE = "smollm2-135m"
ORDER = ["Fine-tuning", "Fine-tuning notes", "Serving", "Retrieval", "Export"]  # notes: by hand
CASES = ["finetune", "serving", "retrieval", "export"]
QUIET_MARK = "(load: measured at the end of the run)"  # replaced by Quiet.describe()


# ---------------------------------------------------------------- machine
def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_peak(size: int, seconds: float) -> dict[str, float]:
    """Best GFLOP/s of a square matmul, fp32 and bf16, on the CPU (the MFU denominator)."""
    import torch

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b
        best, deadline = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
        out[name] = best
    return out


# ---------------------------------------------------------------- 1. fine-tuning
def finetune_case(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    if args.quick:
        hf = bench_finetune.build_tiny(work / "tiny-hf", MODELS / BASE / "hf")
        steps, batch, rounds = 3, 4, 1
    else:
        hf, steps, batch, rounds = MODELS / BASE / "hf", args.steps, args.batch, args.rounds
    peaks = [matmul_peak(512 if args.quick else 1024, 0.5 if args.quick else 2.0)]
    # the careful user's TRL: bf16 autocast only where this CPU multiplies bf16 faster
    careful_bf16 = peaks[0]["bf16"] >= BF16_MIN_SPEEDUP * peaks[0]["fp32"]
    sides = ["baseline", "careful", "ours"]
    # TRL's defaults autocast to bf16. Where this CPU runs bf16 slower than fp32 that side is
    # many times slower than the careful one (it cannot be the better baseline) and one round
    # of it takes longer than all the others: it runs one round only, and the section says so.
    baseline_rounds = rounds if careful_bf16 or args.quick else 1
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for r in range(rounds):
        for side in sides[r % 3 :] + sides[: r % 3]:  # each side leads one round in three
            if side == "baseline" and r >= baseline_rounds:
                continue
            argv = [side, "--hf", str(hf), "--steps", str(steps), "--batch", str(batch)]
            argv += ["--bf16", "on" if careful_bf16 else "off"] if side == "careful" else []
            if args.quick:  # one process: memory is not comparable, speed is a smoke
                result = bench_finetune.run_side(side, bench_finetune.parse(argv))
            else:
                out = work / f"{side}-{r}.json"
                subprocess.run(
                    [
                        sys.executable,
                        str(ROOT / "scripts" / "bench_finetune.py"),
                        *argv,
                        "--out",
                        str(out),
                    ],
                    check=True,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                result = json.loads(out.read_text())
            print(
                f"  fine-tuning {side} round {r + 1}: {result['tokens_per_second']:.1f} "
                f"tokens/s, peak {result['peak_rss_mb']:.0f} MB",
                flush=True,
            )
            runs[side].append(result)
    peaks.append(matmul_peak(512 if args.quick else 1024, 0.5 if args.quick else 2.0))
    peak = {k: max(p[k] for p in peaks) for k in ("fp32", "bf16")}
    return {
        "runs": runs,
        "peak": peak,
        "hf": str(
            hf.relative_to(ROOT) if hf.is_relative_to(ROOT) else "a tiny random Llama (quick mode)"
        ),
        "steps": steps,
        "batch": batch,
        "rounds": rounds,
        "baseline_rounds": baseline_rounds,
        "quick": args.quick,
        "careful_bf16": careful_bf16,
    }


def summarise_finetune(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for side, runs in res["runs"].items():
        first = runs[0]
        n = first["base_parameters"]
        rate = statistics.median(r["tokens_per_second"] for r in runs)
        flops = 4 * n * rate / 1e9
        out[side] = {
            "rate": rate,
            "peak_mb": statistics.median(r["peak_rss_mb"] for r in runs),
            "rss_start_mb": statistics.median(r["rss_start_mb"] for r in runs),
            "gflops": flops,
            "mfu_fp32": flops / res["peak"]["fp32"],
            "mfu_bf16": flops / res["peak"]["bf16"],
            "losses": first["losses"],
            "padding": 1 - first["fed_tokens_total"] / max(first["computed_positions"], 1),
            "settings": first,
            "rates": [r["tokens_per_second"] for r in runs],
        }
    return out


def finetune_section(res: dict[str, Any], machine: str) -> tuple[str, dict[str, float]]:
    s = summarise_finetune(res)
    b, c, o = s["baseline"], s["careful"], s["ours"]
    best_name, best = max(
        (("TRL defaults", b), ("TRL for this host", c)), key=lambda x: x[1]["rate"]
    )
    speed, memory = o["rate"] / best["rate"], o["peak_mb"] / best["peak_mb"]
    flags = cpu_flags()
    bf16_hw = sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile"))

    def row(name: str, x: dict[str, Any]) -> str:
        st = x["settings"]
        return (
            f"| {name} | {x['rate']:.1f} ({', '.join(f'{v:.1f}' for v in x['rates'])}) | "
            f"{x['peak_mb']:.0f} | {x['gflops']:.1f} | {100 * x['mfu_fp32']:.1f}% | "
            f"{100 * x['mfu_bf16']:.1f}% | {100 * x['padding']:.0f}% | "
            f"{'bf16 autocast' if st['bf16'] else 'fp32'}, gradient checkpointing "
            f"{'on' if st['gradient_checkpointing'] else 'off'}, "
            f"{'padding-free' if st['padding_free'] else 'padded batches'} |"
        )

    steps = max(len(b["losses"]), len(c["losses"]), len(o["losses"]))
    loss_rows = [
        f"| {i + 1} | {_at(b['losses'], i)} | {_at(c['losses'], i)} | {_at(o['losses'], i)} |"
        for i in range(steps)
    ]
    quick = (
        " **Quick mode (CI smoke): a tiny random model, one process, numbers meaningless.**"
        if res["quick"]
        else ""
    )
    lines = [
        "## Fine-tuning",
        "",
        f"`scripts/bench.py` (sides run by `scripts/bench_finetune.py`), {machine}.{quick}",
        f"Model: {res['hf']} ({o['settings']['base_parameters'] / 1e6:.1f}M base parameters N), "
        f"LoRA r16/alpha 32/dropout 0.05 on all linear layers, {res['steps']} steps of batch "
        f"{res['batch']}, learning rate 2e-3 (linear, 3% warm-up), seed 3, the same generated "
        "question/answer rows (system prompt, 0-4 extra answer sentences) in the same order; "
        "loss on the answers only. Each side runs in its own process; the sides alternate, "
        f"{res['rounds']} round(s), medians (each round's rate in brackets).",
        "",
        "- **baseline**: plain TRL `SFTTrainer` + PEFT with `SFTConfig` defaults (bf16 autocast, "
        "gradient checkpointing, padded batches, per-step entropy/accuracy metrics); only the "
        "optimiser settings above, `use_cpu=True` (required on CPU with TRL's bf16 default), "
        "`logging_steps=1` (for the loss curve) and no checkpoints are set."
        + (
            f" It ran {res['baseline_rounds']} round(s) only: its bf16 autocast runs at the "
            "measured bf16 speed of this CPU (below), so it is far slower than the careful "
            "side and cannot be the better baseline."
            if res.get("baseline_rounds", res["rounds"]) < res["rounds"]
            else ""
        ),
        "- **careful**: the same TRL set-up with `bf16` chosen for this host as a careful "
        f"user would (here {'on' if res['careful_bf16'] else 'off'}: the measured bf16 matmul "
        f"peak is {res['peak']['bf16'] / res['peak']['fp32']:.2f}x fp32, and bf16 is used "
        f"only from {BF16_MIN_SPEEDUP}x).",
        "- **ours**: `api.finetune.recipe.train` exactly as a job runs it, spec defaults "
        "(progress events into the job store every step included).",
        "",
        "Trained tokens/s counts the non-padding prompt+answer tokens fed to the model in "
        "training mode, from the end of step 1 to the end of the last step (step 1 is warm-up). "
        "Peak memory is the process's resident set high-water mark during training (sampled "
        "every 5 ms), model load included. MFU = 4·N FLOPs per trained token × tokens/s ÷ the "
        "CPU's measured matmul peak in this run: "
        f"fp32 {res['peak']['fp32']:.0f} GFLOP/s, bf16 {res['peak']['bf16']:.0f} GFLOP/s "
        f"(best square matmul, {'512' if res['quick'] else '1024'}², measured before and after).",
        "",
        "| Side | trained tokens/s | peak RSS MB | GFLOP/s (4N) | MFU vs fp32 peak | "
        "MFU vs bf16 peak | padding computed | settings |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        row("baseline: TRL defaults", b),
        row("careful: TRL for this host", c),
        row("ours: the recipe", o),
        "",
        f"**Ours vs baseline: {speed:.2f}x trained tokens/s, {memory:.2f}x peak memory** "
        f"against the faster of the two TRL sides ({best_name}); against TRL defaults "
        f"{o['rate'] / b['rate']:.2f}x and {o['peak_mb'] / b['peak_mb']:.2f}x. Targets: ≥ 2x "
        "speed at ≤ 1.0x memory on a CPU with fast bf16 (AMX), ≥ 1.5x on one without.",
        "",
        f"bf16 on this CPU: flags {', '.join(bf16_hw) if bf16_hw else 'without AVX512-BF16 or AMX'}"
        f"; measured bf16 matmul is {res['peak']['bf16'] / res['peak']['fp32']:.2f}x fp32. The "
        "recipe's `mixed_precision: auto` measures the same thing once per host and trains in "
        f"bf16 on the CPU only from {BF16_MIN_SPEEDUP}x.",
        "",
        "Training loss per step (the same rows in the same order; the optimisation must not "
        "learn worse):",
        "",
        "| step | baseline loss | careful loss | ours loss |",
        "| --- | --- | --- | --- |",
        *loss_rows,
        "",
        "GPU: no GPU was available in this session, so the CUDA run (a model built from the "
        "Mistral-7B config with random weights, 4-bit, recipe vs TRL defaults, "
        "`torch.cuda.max_memory_allocated` as peak memory) has not been measured; "
        "`scripts/bench.py` runs it when `torch.cuda.is_available()`.",
        "",
    ]
    if res.get("cuda"):
        lines[-2:] = cuda_lines(res["cuda"])
    ratios = {"fine-tune tokens/s": speed, "fine-tune peak memory": memory}
    return "\n".join(lines), ratios


def _at(values: list[float], i: int) -> str:
    return f"{values[i]:.4f}" if i < len(values) else ""


def cuda_case(work: Path) -> dict[str, Any] | None:
    """The 7B-shaped 4-bit run, recipe vs TRL defaults, when a GPU is present."""
    import torch

    if not torch.cuda.is_available():
        return None
    return gpu_bench.run(work, MODELS / BASE / "hf")


def cuda_lines(cuda: dict[str, Any]) -> list[str]:
    return gpu_bench.lines(cuda)


# ---------------------------------------------------------------- 2. serving
def serving_case(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """scripts/bench_serving.py: llama-server direct and the API on both backends, in turns."""
    import bench_serving

    return bench_serving.run(quick=args.quick)


def serving_section(res: dict[str, Any], machine: str) -> tuple[str, dict[str, float]]:
    import bench_serving

    r = bench_serving.ratios(res)
    quick = " **Quick mode (CI smoke): numbers meaningless.**" if res["rounds"] < 3 else ""
    load = f"load average {res['load_average'][0]:.1f} at its start, {res['load_average_end'][0]:.1f} at its end"
    section = "\n".join(
        [
            "## Serving",
            "",
            f"`scripts/bench_serving.py` (run by `scripts/bench.py`), {machine}; {load}.{quick} "
            f"SmolLM2-135M-Instruct Q4_1 GGUF (`shared/models/{BASE}/model.gguf`), "
            f"{res['threads']} threads, {res['parallel']} slots, greedy, {res['max_tokens']} "
            f"tokens per reply; the three sides are up together and take turns, request by "
            f"request ({res['rounds']} rounds; the 4-request case 3 rounds), medians.",
            "",
            "- **llama-server direct**: the built `llama-server` started with the backend's own "
            "command line, asked as its own users would: streaming `/v1/chat/completions` "
            "(its chat template, prompt cache on).",
            "- **API, backend llamaserver** (the default): `POST /generate` with `stream: true` "
            "through the service as `make run` starts it (a uvicorn process on loopback), read "
            "as NDJSON lines.",
            "- **API, backend llamacpp (old)**: the same API with llama.cpp in its process "
            "(llama-cpp-python), which evaluates every prompt from scratch and answers one "
            "request at a time.",
            "",
            "Decode tokens/s counts the streamed tokens after the first over the time from the "
            "first to the last; TTFT is from sending the request. Each round asks a different "
            "prompt, so the prompt cache reuses only the chat template's prefix. Warm vs cold: "
            "two requests sharing a new ~300-token system prompt, TTFT of the second over the "
            "first. Requests without a `seed` use the prompt cache; with a seed the prompt is "
            "evaluated from scratch so the reply reproduces (docs/serving.md).",
            "",
            *bench_serving.table(res),
            "",
            f"**API vs llama-server direct: {r['decode']:.2f}x decode tokens/s** (target ≥ "
            f"0.95x), **TTFT {r['ttft']:.2f}x** (target ≤ 1.2x). **Warm/cold TTFT "
            f"{r['warm_cold']:.2f}x** (target ≤ 0.5x). **4 concurrent vs sequential "
            f"{r['concurrency']:.2f}x** (target ≥ 1.5x); llama-server direct gets "
            f"{r['concurrency_direct']:.2f}x from its parallel slots on this host, which bounds "
            f"what the API can get; the API's concurrent figure is {r['concurrency_vs_old']:.2f}x "
            "the old in-process backend's.",
            "",
        ]
    )
    return section, {
        "serving decode tokens/s": r["decode"],
        "serving TTFT (direct/API)": 1 / r["ttft"],
        "serving 4 concurrent vs sequential": r["concurrency"],
    }


# ---------------------------------------------------------------- 3. retrieval
def retrieval_case(args: argparse.Namespace, report: Path) -> dict[str, float]:
    """scripts/bench_retrieval.py, run in this process; it writes its own section."""
    import bench_retrieval

    sizes = ["--pages", "3", "--imports", "1", "--queries", "3"] if args.quick else []
    saved = sys.argv
    sys.argv = ["bench_retrieval.py", *sizes, "--out", str(report)]
    try:
        bench_retrieval.main()
    finally:
        sys.argv = saved
    text = _sections(report.read_text())[1].get("Retrieval", "")
    ratios = {}
    if m := re.search(r"Speed-up of ours over naive: ([0-9.]+)x", text):
        ratios["retrieval import pages/s"] = float(m.group(1))
    p50 = re.findall(r"^\| (ours: vector search|naive: embed)[^|]*\| ([0-9.]+) \|", text, re.M)
    if len(p50) == 2:
        ratios["retrieval query p50 (naive/ours)"] = float(p50[1][1]) / float(p50[0][1])
    return ratios


# ---------------------------------------------------------------- 4. export
def export_case(args: argparse.Namespace, report: Path) -> None:
    """scripts/bench_export.py, run in this process; it writes its own section. `--quick`
    leaves the measured section as it is (a placeholder must never replace figures)."""
    if args.quick:
        print("== export: skipped with --quick (the measured section is kept)", flush=True)
        return
    import bench_export

    saved = sys.argv
    sys.argv = ["bench_export.py", "--out", str(report)]
    try:
        bench_export.main()
    finally:
        sys.argv = saved


# ---------------------------------------------------------------- report
def _sections(text: str) -> tuple[str, dict[str, str]]:
    """(preamble, {heading: section text}) of a markdown file with `## ` sections."""
    parts = re.split(r"(?m)^(?=## )", text)
    sections = {}
    for part in parts[1:]:
        sections[part.splitlines()[0][3:].strip()] = part.rstrip("\n") + "\n"
    return parts[0], sections


def write_report(path: Path, new: dict[str, str], preamble: str) -> None:
    _, sections = _sections(path.read_text()) if path.exists() else ("", {})
    sections.update(new)
    ordered = [h for h in ORDER if h in sections] + [h for h in sections if h not in ORDER]
    body = "\n".join(sections[h].rstrip("\n") + "\n" for h in ordered)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(preamble.rstrip("\n") + "\n\n" + body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke for CI")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs",
        help="directory for benchmarks.md and benchmarks.png",
    )
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument(
        "--max-load",
        type=float,
        default=float(os.cpu_count() or 1),
        help="keep the figures only when the 1-minute load average stays at or under this",
    )
    parser.add_argument("--rounds", type=int, default=3, help="fine-tuning rounds per side")
    parser.add_argument("--steps", type=int, default=5, help="fine-tuning steps")
    parser.add_argument("--batch", type=int, default=8, help="fine-tuning batch size")
    parser.add_argument("--requests", type=int, default=6, help="serving requests per side")
    parser.add_argument("--max-tokens", type=int, default=128, help="serving tokens per reply")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    if unknown := only - set(CASES):
        parser.error(f"unknown case(s) {sorted(unknown)}; choose from {CASES}")
    report = args.out / "benchmarks.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    quiet = Quiet(args.max_load)
    before = report.read_text() if report.is_file() else None
    machine = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {cpu_name()}, {cores} cores, {QUIET_MARK}"
    preamble = (
        "# Benchmarks\n\nMade by `scripts/bench.py` (full run: `.venv/bin/python "
        "scripts/bench.py`; CI smoke: `--quick`). Each case runs against its baseline in "
        "the same run, interleaved; the chart is `benchmarks.png` (loss per step of the "
        "fine-tuning sides, and each case's ratio to its baseline). No GPU was available "
        "for the figures here.\n"
    )
    new: dict[str, str] = {}
    ratios: dict[str, float] = {}
    losses: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "finetune" in only:
            print("== fine-tuning", flush=True)
            res = finetune_case(args, work)
            if not args.quick:
                res["cuda"] = cuda_case(work)
            new["Fine-tuning"], r = finetune_section(res, machine)
            ratios |= r
            losses = {side: runs[0]["losses"] for side, runs in res["runs"].items()}
        if "serving" in only:
            print("== serving", flush=True)
            new["Serving"], r = serving_section(serving_case(args, work), machine)
            ratios |= r
        if "retrieval" in only:
            print("== retrieval", flush=True)
            write_report(report, new, preamble)  # bench_retrieval edits the same file
            ratios |= retrieval_case(args, report)
        if "export" in only:
            write_report(report, new, preamble)  # bench_export edits the same file
            export_case(args, report)
    quiet.finish()
    new = {heading: text.replace(QUIET_MARK, quiet.describe()) for heading, text in new.items()}
    write_report(report, new, preamble)
    print(f"{quiet.describe()}.")
    if not args.quick and not quiet.quiet:
        noisy = report.with_suffix(".noisy.md")
        noisy.write_text(report.read_text())
        if before is None:
            report.unlink()
        else:
            report.write_text(before)  # the sections written during the run are taken back
        print(
            f"NOT written: {quiet.why_not()}, so the figures are noise; they are in {noisy} for reference. Run it on a quiet machine."
        )
        return 0
    import bench_chart

    # the chart shows every case: those not run this time keep their last quiet figures
    kept = args.out / "benchmarks.json"
    saved = json.loads(kept.read_text()) if kept.is_file() else {}
    saved["ratios"] = {**saved.get("ratios", {}), **ratios}
    saved["losses"] = losses or saved.get("losses", {})
    if args.quick:  # a smoke's figures are meaningless: chart them, keep nothing
        saved = {"ratios": ratios, "losses": losses}
    else:
        kept.write_text(json.dumps(saved, indent=1) + "\n")
    bench_chart.draw(args.out / "benchmarks.png", saved["losses"], saved["ratios"])
    print(report.read_text())
    print(json.dumps(ratios, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
