"""The GPU check: `make gpu-check`. On a CUDA host, in about 6 minutes on one H200 (estimated):

1. the API as a process fine-tunes SmolLM2 with bits=4 (QLoRA) for a few steps through
   POST /fine_tune_model (with gpus=2, DDP, on a host with two or more GPUs), follows GET /jobs/{id}, exports to GGUF and answers POST /generate
   from the tuned model (scripts/gpu_api_check.py); on a host with two or more GPUs, the same
   job again with `sharding: fsdp` (FSDP-QLoRA), its adapter compared with the DDP job's
   (scripts/gpu_fsdp_check.py; skipped with the reason on a host with one GPU);
2. a GPTQ base: the same base quantised with GPTQ on the GPU, LoRA trained on its 4-bit
   weights through the API (gptqmodel's CUDA kernels), exported and served
   (scripts/gpu_gptq_check.py; skipped, saying why, where the GPTQ packages do not import);
3. the 7B-shaped QLoRA benchmark, recipe vs TRL: trained tokens/s, peak CUDA memory, MFU
   (scripts/gpu_bench.py);

then writes the figures as the `## GPU check` section of docs/benchmarks.md. Progress lines
start with `==>`. Without CUDA it prints "skipped: no CUDA" and exits 0. Exit 1 when a step
failed (the section then says which and why); 2 for bad arguments.

    python scripts/gpu_check.py [--skip-api] [--skip-gptq] [--skip-bench] [--artifacts DIR]
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

HEADING = "## GPU check"
PACKAGES = [
    "transformers",
    "trl",
    "peft",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "pyarrow",
    "llama_cpp_python",
    "fastapi",
    "pydantic",
]
# Imported before any work, so a missing or broken package fails in seconds, not minutes in.
MODULES = [
    "fastapi",
    "uvicorn",
    "pydantic_settings",
    "python_multipart",
    "transformers",
    "peft",
    "trl",
    "datasets",
    "bitsandbytes",
    "rouge_score",
    "llama_cpp",
    "httpx",
]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--report",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="markdown file whose `## GPU check` section is written",
    )
    p.add_argument(
        "--artifacts", type=Path, help="also copy the report, gpu-check.json and the API log here"
    )
    p.add_argument(
        "--standin",
        type=Path,
        default=ROOT / ".gpu-bundle" / "smollm2-135m-hf",
        help="SmolLM2's config and tokenizer, used when the base is not provisioned",
    )
    p.add_argument("--steps", type=_positive, default=8, help="fine-tuning steps via the API")
    p.add_argument("--job-timeout", type=_positive, default=300, help="seconds for the job")
    p.add_argument("--bench-steps", type=_positive, default=6, help="benchmark steps a side")
    p.add_argument("--bench-batch", type=_positive, default=16, help="benchmark batch size")
    p.add_argument(
        "--bench-sentences",
        type=int,
        default=40,
        help="extra sentences per benchmark answer (tokens a step)",
    )
    p.add_argument("--budget", type=_positive, default=480, help="target seconds in all")
    p.add_argument("--skip-api", action="store_true", help="benchmark only")
    p.add_argument("--skip-gptq", action="store_true", help="no GPTQ step")
    p.add_argument("--skip-bench", action="store_true", help="no 7B benchmark")
    args = p.parse_args(argv)
    if args.skip_api and args.skip_bench and args.skip_gptq:
        p.error("--skip-api, --skip-gptq and --skip-bench together leave nothing to check")
    if args.bench_steps < 2:
        p.error("--bench-steps must be 2 or more (step 1 is warm-up, not timed)")
    if args.bench_sentences < 0:
        p.error("--bench-sentences must be 0 or more")
    return args


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def preflight() -> list[str]:
    """Import what the check needs; the problems, one line each."""
    import importlib

    problems = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import failure is reported
            problems.append(f"import {name}: {type(exc).__name__}: {exc}")
    return problems


def format_section(res: dict[str, Any]) -> str:
    """The `## GPU check` section: what ran, on what, how long, and the figures or errors."""
    total, budget = res["total_s"], res["budget_s"]
    pkgs = ", ".join(f"{k} {v}" for k, v in res["versions"].items())
    out = [
        HEADING,
        "",
        f"`make gpu-check` (`scripts/gpu_check.py`), {res['when']}, {res['device']}, torch "
        f"{res['torch']}; {pkgs}. Total {total:.0f} s "
        f"({'within' if total <= budget else '**over**'} the {budget:.0f} s target).",
        "",
    ]
    api = res.get("api")
    out.append(
        "**Fine-tune, export, serve through the API** (a uvicorn process; "
        "POST /fine_tune_model with bits=4, GET /jobs/{id}, POST /generate): "
    )
    if api is None:
        out[-1] += "not run (--skip-api)."
    elif "error" in api:
        out[-1] += f"**failed**: {_first_line(api['error'])}"
    else:
        m = api["job"]["metrics"] or {}
        export = m.get("export", {})
        gen = api["generate"]
        out[-1] += (
            f"base {api['base']} ({api['base_described']}); {api['steps']} steps with "
            f"bits={m.get('bits')} on {m.get('device')}"
            + (f" ({m['processes']} GPUs, DDP)" if (m.get("processes") or 1) > 1 else "")
            + (f", attention {m['attention'].split(':')[0]}" if m.get("attention") else "")
            + ", train loss "
            f"{_num(m.get('train_loss_first'))} → {_num(m.get('train_loss_last'))}, eval "
            f"loss {_num(m.get('eval_loss'))}; job (train, evaluate, export, smoke test) "
            f"{api['job_s']:.0f} s; export {export.get('mode', '?')} to "
            f"{', '.join(export.get('files', {})) or '?'} ({_timings(export)}); "
            "POST /generate answered "
            f"{gen['completion_tokens']} tokens in {api['generate_s']:.1f} s "
            f"({gen['done_reason']}): {gen['response'][:120]!r}."
        )
        out += ["", _fsdp_line(api.get("fsdp"))]
    out.append("")
    import gpu_gptq_check

    out += [gpu_gptq_check.line(res.get("gptq")), ""]
    bench = res.get("bench")
    if bench is None:
        out += ["7B-shaped QLoRA benchmark: not run (--skip-bench).", ""]
    elif "error" in bench:
        out += [f"7B-shaped QLoRA benchmark: **failed**: {_first_line(bench['error'])}", ""]
    else:
        import gpu_bench

        out += gpu_bench.lines(bench)
    return "\n".join(out).rstrip("\n") + "\n"


def _fsdp_line(fsdp: dict[str, Any] | None) -> str:
    """What the FSDP step (scripts/gpu_fsdp_check.py) did: figures, failure or why skipped."""
    head = "**FSDP** (the same job with gpus=2, sharding=fsdp, bits=4, export none): "
    if fsdp is None:
        return head + "not run."
    if "skipped" in fsdp:
        return head + f"skipped: {fsdp['skipped']}."
    if "error" in fsdp:
        return head + f"**failed**: {_first_line(fsdp['error'])}"
    m = fsdp["job"]["metrics"] or {}
    return head + (
        f"trained on {m.get('processes')} GPUs with sharding {m.get('sharding')}, train loss "
        f"{_num(m.get('train_loss_first'))} → {_num(m.get('train_loss_last'))}, eval loss "
        f"{_num(m.get('eval_loss'))}; job {fsdp['job_s']:.0f} s; rank 0 wrote one adapter "
        f"of {fsdp['tensors']} whole tensors, the DDP job's names and shapes."
    )


def _timings(export: dict[str, Any]) -> str:
    steps = export.get("timings", {})
    return ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in steps.items()) or "no timings"


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "?"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "(no message)"


def say(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    if not torch.cuda.is_available():
        say(f"skipped: no CUDA (torch {torch.__version__} sees no GPU; nothing was checked)")
        return 0
    started = time.monotonic()
    device = torch.cuda.get_device_name(0)
    memory = torch.cuda.get_device_properties(0).total_memory / 2**30
    res: dict[str, Any] = {
        "when": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "device": f"{device} ({memory:.0f} GiB)",
        "torch": f"{torch.__version__} (CUDA {torch.version.cuda})",
        "versions": versions(),
        "budget_s": args.budget,
    }
    say(f"==> GPU check on {res['device']}, torch {res['torch']}")
    say("==> " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()))
    if problems := preflight():
        say("==> FAILED before any work (nothing written):\n    " + "\n    ".join(problems))
        return 1
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    failed = []
    if not args.skip_api:
        import gpu_api_check

        try:
            res["api"] = gpu_api_check.run(
                work / "api",
                standin_files=args.standin,
                steps=args.steps,
                timeout=args.job_timeout,
                say=say,
            )
        except Exception as exc:  # noqa: BLE001 - recorded, and the benchmark still runs
            res["api"] = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append("fine-tune/export/serve")
            say(f"==> FAILED fine-tune/export/serve: {exc}")
        if "error" in res["api"].get("fsdp", {}):
            failed.append("FSDP")
    if not args.skip_gptq:
        import gpu_gptq_check

        try:
            res["gptq"] = gpu_gptq_check.run(
                work / "gptq",
                cuda=True,
                standin=args.standin,
                steps=args.steps,
                timeout=args.job_timeout,
                api=res.get("api"),
                say=say,
            )
        except Exception as exc:  # noqa: BLE001 - recorded, and the benchmark still runs
            res["gptq"] = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append("GPTQ")
            say(f"==> FAILED GPTQ: {exc}")
    if not args.skip_bench:
        import gpu_bench

        hf = ROOT / "shared" / "models" / "smollm2-135m" / "hf"
        try:
            res["bench"] = gpu_bench.run(
                work / "bench",
                hf if hf.is_dir() else args.standin,
                steps=args.bench_steps,
                batch=args.bench_batch,
                sentences=args.bench_sentences,
                say=say,
            )
        except Exception as exc:  # noqa: BLE001
            res["bench"] = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append("7B benchmark")
            say(f"==> FAILED 7B benchmark: {exc}")
    res["total_s"] = time.monotonic() - started
    import bench_doc

    bench_doc.write_section(args.report, HEADING, format_section(res))
    say(f"==> wrote {HEADING} in {args.report}")
    if args.artifacts:
        args.artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.report, args.artifacts / "benchmarks.md")
        (args.artifacts / "gpu-check.json").write_text(json.dumps(res, indent=1, default=str))
        for part in ("api", "gptq"):
            log = work / part / "api.log"
            if log.is_file():
                shutil.copy(log, args.artifacts / ("api.log" if part == "api" else "gptq-api.log"))
        say(f"==> copied the report, gpu-check.json and the API logs to {args.artifacts}")
    verdict = "FAILED: " + ", ".join(failed) if failed else "all steps passed"
    if "skipped" in res.get("gptq", {}):
        verdict += f" (GPTQ step not run: {res['gptq']['skipped']})"
    over = "within" if res["total_s"] <= args.budget else "OVER"
    say(f"==> {verdict}; {res['total_s']:.0f} s ({over} the {args.budget} s target)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
