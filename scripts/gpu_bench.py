"""The 7B-shaped QLoRA benchmark on a CUDA GPU: the recipe vs plain TRL, each in its own process.

Run by scripts/gpu_check.py and scripts/bench.py when CUDA is present. A model with
Mistral-7B's architecture and random bf16 weights is built on the GPU (no download), then
each side (scripts/bench_finetune.py) loads it in 4-bit NF4 and trains LoRA for a few steps
on long question/answer rows: trained tokens/s, peak CUDA memory and MFU.

MFU = 4·N FLOPs per trained token (forward 2N + input gradients 2N; the frozen 4-bit base
gets no weight gradients; recomputation by gradient checkpointing is not useful work) x
tokens/s over the GPU's dense bf16 peak: from the datasheet table below when the device name
matches, else measured here with a bf16 matmul. Both are printed; the figure is never NaN.
"""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, in TFLOP/s. Matched
# against torch.cuda.get_device_name() in order, so the specific variants come first.
PEAKS: list[tuple[tuple[str, ...], float, str]] = [
    (("h100", "pcie"), 756.0, "H100 PCIe"),
    (("h100", "nvl"), 835.0, "H100 NVL"),
    (("h200", "nvl"), 835.0, "H200 NVL"),
    (("gh200",), 989.0, "GH200"),
    (("h200",), 989.0, "H200 SXM"),
    (("h100",), 989.0, "H100 SXM"),
    (("a100",), 312.0, "A100"),
]

DEFAULTS = {"steps": 6, "batch": 16, "sentences": 40}  # ~420-token rows: ~6.7k tokens a step


def table_peak(device_name: str) -> tuple[float, str] | None:
    """(TFLOP/s, datasheet label) for a known GPU, else None."""
    name = device_name.lower()
    for needles, tflops, label in PEAKS:
        if all(n in name for n in needles):
            return tflops, label
    return None


def measured_peak(size: int = 8192, repeats: int = 20) -> float:
    """Best bf16 matmul TFLOP/s on the current GPU (random data, CUDA events, warmed up)."""
    import torch

    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1000)
    del a, b
    torch.cuda.empty_cache()
    return 2 * size**3 / best / 1e12


def choose_peak(device_name: str, measured: float) -> dict[str, Any]:
    """The MFU denominator: the datasheet's peak for a known GPU, else the measured one."""
    known = table_peak(device_name)
    if known:
        return {
            "tflops": known[0],
            "source": f"{known[1]} datasheet, dense bf16",
            "measured_tflops": measured,
        }
    return {
        "tflops": measured,
        "source": "measured bf16 matmul (GPU not in the table)",
        "measured_tflops": measured,
    }


def run(
    work: Path,
    tokenizer_dir: Path,
    *,
    steps: int = DEFAULTS["steps"],
    batch: int = DEFAULTS["batch"],
    sentences: int = DEFAULTS["sentences"],
    say=print,
) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Both sides on the 7B-shaped model; the dict that `lines()` formats."""
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_finetune

    device = torch.cuda.get_device_name(0)
    say(f"==> 7B-shaped QLoRA benchmark on {device}: measuring the bf16 matmul peak")
    peak = choose_peak(device, measured_peak())
    say(
        f"==> peak for MFU: {peak['tflops']:.0f} TFLOP/s ({peak['source']}); measured "
        f"{peak['measured_tflops']:.0f} TFLOP/s"
    )
    started = time.monotonic()
    say("==> building a Mistral-7B-shaped model with random bf16 weights on the GPU")
    hf = bench_finetune.build_mistral7b_shape(work / "mistral7b-random", tokenizer_dir)
    build_s = time.monotonic() - started
    sides: dict[str, Any] = {}
    for side in ("baseline", "ours"):
        say(
            f"==> {side}: {steps} steps of batch {batch}, 4-bit NF4 "
            f"({'TRL defaults' if side == 'baseline' else 'the recipe'})"
        )
        out = work / f"gpu-{side}.json"
        began = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "bench_finetune.py"),
                side,
                "--hf",
                str(hf),
                "--steps",
                str(steps),
                "--batch",
                str(batch),
                "--sentences",
                str(sentences),
                "--bits",
                "4",
                "--out",
                str(out),
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        sides[side] = json.loads(out.read_text()) | {"wall_s": time.monotonic() - began}
        r = sides[side]
        say(
            f"==> {side}: {r['tokens_per_second']:.0f} trained tokens/s, "
            f"{r['trained_tokens'] / max(r['steps'] - 1, 1):.0f} tokens a step, peak "
            f"{r['cuda_peak_mb'] / 1024:.1f} GiB, MFU {100 * mfu(r, peak['tflops']):.1f}%"
        )
    return {
        "device": device,
        "peak": peak,
        "steps": steps,
        "batch": batch,
        "sentences": sentences,
        "build_s": build_s,
        **sides,
    }


def mfu(side: dict[str, Any], peak_tflops: float) -> float:
    return 4 * side["base_parameters"] * side["tokens_per_second"] / 1e12 / peak_tflops


def lines(res: dict[str, Any]) -> list[str]:
    """The benchmark as markdown lines (a table and the ratio of the recipe to TRL)."""
    b, o, peak = res["baseline"], res["ours"], res["peak"]

    def row(name: str, x: dict[str, Any]) -> str:
        tf = 4 * x["base_parameters"] * x["tokens_per_second"] / 1e12
        per_step = x["trained_tokens"] / max(x["steps"] - 1, 1)
        return (
            f"| {name} | {x['tokens_per_second']:.0f} | {per_step:.0f} | "
            f"{x['cuda_peak_mb'] / 1024:.1f} | {tf:.1f} | "
            f"{100 * tf / peak['tflops']:.1f}% | {x['wall_s']:.0f} |"
        )

    return [
        f"7B-shaped QLoRA on {res['device']}: a model built from the Mistral-7B config "
        f"(random bf16 weights, SmolLM2's 49152-token vocabulary, "
        f"{b['base_parameters'] / 1e9:.2f}B parameters N), loaded in 4-bit NF4 by each side in "
        f"its own process; LoRA r16 on all linear layers, {res['steps']} steps of batch "
        f"{res['batch']} (answers of {res['sentences']}+ sentences); rates from the end of step 1 "
        "to the last step. MFU = 4·N FLOPs per trained token × tokens/s over "
        f"{peak['tflops']:.0f} TFLOP/s ({peak['source']}; a bf16 8192³ matmul measured "
        f"{peak['measured_tflops']:.0f} here). Building the model took {res['build_s']:.0f} s.",
        "",
        "| Side | trained tokens/s | tokens a step | peak CUDA GiB | TFLOP/s (4N) | MFU | "
        "wall s (load + train) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        row("baseline: TRL defaults", b),
        row("ours: the recipe", o),
        "",
        f"Ours vs baseline: {o['tokens_per_second'] / b['tokens_per_second']:.2f}x tokens/s, "
        f"{o['cuda_peak_mb'] / b['cuda_peak_mb']:.2f}x peak memory.",
        "",
        *setup_lines(b, o),
    ]


def setup_lines(b: dict[str, Any], o: dict[str, Any]) -> list[str]:
    """How each side ran: attention, checkpointing, LM head dtype (absent in older results)."""
    if "attention" not in o:
        return []

    def said(x: dict[str, Any]) -> str:
        checkpointing = (
            f"checkpointing {x['checkpointing_kwargs'] or 'default'}"
            if x.get("gradient_checkpointing")
            else "no checkpointing"
        )
        liger = ", Liger kernels" if x.get("liger_kernel") else ""
        return (
            f"attention {x.get('attention')}, {checkpointing}, LM head in "
            f"{x.get('lm_head_dtype')}{liger}"
        )

    return [f"Set-up: baseline {said(b)}; ours {said(o)}.", ""]
