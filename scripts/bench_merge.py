"""The export merge on a 7B-shaped model: peak memory and time, shard by shard in bf16 vs
PEFT's merge_and_unload in fp32, against the disk-I/O floor measured in the same run.

    .venv/bin/python scripts/bench_merge.py [--layers 4] [--out docs/benchmarks.md]

The base has Llama-2-7B's shapes (hidden 4096, intermediate 11008, 32 heads, vocab 32000)
and `--layers` of its 32 blocks (32: the real size, 13.5 GB in bf16, and PEFT's side then
needs ~28 GB of RAM), saved in bf16 in 2 GB shards with random weights; the adapter is r=16
on every linear layer. Each side runs in its own child process, so its peak RSS is its own.
The I/O floor is reading and writing the same bytes (a copy of the shards with fsync).

Writes the "Export merge" section of docs/benchmarks.md only when the 1-minute load average
stays at or under the core count; otherwise prints the figures and says why.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_doc import Quiet, write_section_if_quiet  # noqa: E402  (scripts/ is on sys.path when run)

HEADING = "## Export merge"


def build(work: Path, layers: int) -> tuple[Path, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=32,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    base = work / "base"
    model.save_pretrained(base, safe_serialization=True, max_shard_size="2GB")
    lora = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    adapter = work / "adapter"
    lora.save_pretrained(adapter)
    del model, lora
    return base, adapter


def child(side: str, base: Path, adapter: Path, out: Path) -> None:
    """One side, in this (child) process; prints its seconds and peak RSS as JSON."""
    start = time.perf_counter()
    if side == "streaming":
        from api.finetune.merge import merge_shards

        merge_shards(adapter, base, out)
    elif side == "peft-fp32":
        from api.finetune.export import _peft_merge

        _peft_merge(adapter, base, out)
    else:  # the I/O floor: the same bytes read and written
        out.mkdir()
        for shard in base.glob("*.safetensors"):
            shutil.copyfile(shard, out / shard.name)
            with open(out / shard.name, "rb+") as f:
                os.fsync(f.fileno())
    seconds = time.perf_counter() - start
    # VmHWM: this process image's own peak (ru_maxrss would carry the parent's over exec)
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 2**20
    print(json.dumps({"seconds": seconds, "peak_gib": peak}))


def run_side(side: str, base: Path, adapter: Path, out: Path) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, __file__, "--child", side, str(base), str(adapter), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["gib_on_disk"] = sum(f.stat().st_size for f in out.glob("*.safetensors")) / 2**30
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4, help="blocks of Llama-2-7B's 32")
    parser.add_argument("--sides", default="io-floor,streaming,peft-fp32")
    parser.add_argument("--max-load", type=float, default=float(os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    quiet = Quiet(args.max_load)
    with tempfile.TemporaryDirectory(dir=ROOT / "shared" / "cache") as tmp:
        work = Path(tmp)
        base, adapter = build(work, args.layers)
        base_gib = sum(f.stat().st_size for f in base.glob("*.safetensors")) / 2**30
        results = {s: run_side(s, base, adapter, work / f"out-{s}") for s in args.sides.split(",")}
    quiet.finish()
    # the full size (no PEFT side: it needs ~28 GB) keeps its own section beside the ratio run
    heading = HEADING + (", full 7B size" if args.layers == 32 else "")
    floor = results.get("io-floor", {}).get("seconds")
    rows = [
        f"| {side} | {r['seconds']:.1f} | {r['peak_gib']:.2f} | {r['gib_on_disk']:.2f} | "
        + (f"{r['seconds'] / floor:.2f}x |" if floor else "- |")
        for side, r in results.items()
    ]
    text = "\n".join(
        [
            heading,
            "",
            f"`scripts/bench_merge.py`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} cores, {quiet.describe()}. A Llama-2-7B-shaped base with {args.layers} of its 32 "
            f"blocks ({base_gib:.2f} GiB of bf16 safetensors in 2 GB shards), LoRA r=16 on all "
            "linear layers; each side in its own process.",
            "",
            "| Side | seconds | peak RSS GiB | GiB written | time vs I/O floor |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
    print(text)
    write_section_if_quiet(args.out, heading, text, quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
