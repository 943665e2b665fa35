"""Export timings: merge, convert, quantise and adapter-convert for SmolLM2-135M.

    .venv/bin/python scripts/bench_export.py [--out docs/benchmarks.md]

A LoRA adapter (r=16, all linear layers, non-zero weights) is made with PEFT on the
provisioned SmolLM2 checkpoint, then put through the same functions a job's export uses
(api/finetune/export.py). Timings do not depend on what the adapter learned. Writes the
"Export" section of docs/benchmarks.md, keeping the other sections.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_doc import write_section  # noqa: E402  (scripts/ is on sys.path when run)

from api.finetune.export import CONVERT_HF, CONVERT_LORA, _converter, merge, quantize  # noqa: E402

BASE_HF = ROOT / "shared" / "models" / "smollm2-135m" / "hf"
HEADING = "## Export"


def make_adapter(out: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(BASE_HF, dtype=torch.float32)
    peft = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.01)
    peft.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(BASE_HF).save_pretrained(out)


def run(work: Path) -> dict[str, float]:
    adapter = work / "adapter"
    make_adapter(adapter)
    times: dict[str, float] = {}

    def timed(name: str, fn, *args) -> None:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        fn(*args)
        times[name] = time.perf_counter() - started

    timed("merge", merge, adapter, BASE_HF, work / "merged")
    timed(
        "convert (F16)",
        _converter,
        CONVERT_HF,
        str(work / "merged"),
        "--outfile",
        str(work / "model-F16.gguf"),
        "--outtype",
        "f16",
    )
    for kind in ("Q4_K_M", "Q8_0"):
        timed(
            f"quantise {kind}", quantize, work / "model-F16.gguf", work / f"model-{kind}.gguf", kind
        )
    timed(
        "adapter convert",
        _converter,
        CONVERT_LORA,
        str(adapter),
        "--base",
        str(BASE_HF),
        "--outfile",
        str(work / "adapter.gguf"),
        "--outtype",
        "f16",
    )
    sizes = {
        name: (work / name).stat().st_size / 2**20
        for name in ("model-F16.gguf", "model-Q4_K_M.gguf", "model-Q8_0.gguf", "adapter.gguf")
    }
    return {**times, **{f"size {k}": v for k, v in sizes.items()}}


def section(res: dict[str, float]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        HEADING,
        "",
        f"`scripts/bench_export.py`, {stamp}, {platform.machine()}, {os.cpu_count()} cores "
        "(written by `scripts/bench.py` only when its run was quiet); SmolLM2-135M (135M parameters), LoRA r=16 "
        "on all linear layers, through the functions a job's export runs.",
        "",
        "| Step | seconds |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v:.1f} |" for k, v in res.items() if not k.startswith("size ")]
    lines += ["", "| File | MiB |", "| --- | --- |"]
    lines += [f"| {k[5:]} | {v:.1f} |" for k, v in res.items() if k.startswith("size ")]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        res = run(Path(tmp))
    text = section(res)
    print(text)  # noqa: T201
    write_section(args.out, HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
