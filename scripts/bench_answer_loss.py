"""The answer-only loss with long answers: chunked (api/finetune/answer_loss.py) vs one pass.

    .venv/bin/python scripts/bench_answer_loss.py [--tokens 2400,6400] [--out docs/benchmarks.md]

The recipe's loss head on SmolLM2-135M's shapes (hidden 576, vocabulary 49,152, the frozen LM
head in fp32): forward and backward of the summed cross-entropy over N answer positions. Each
side runs in its own child process, so its peak resident memory is its own; the figure is the
peak during forward+backward minus the resident size just before (head and hidden states
already allocated). The baseline is the same function with a chunk larger than N (one pass,
every position's logits alive for the backward pass). Losses and input gradients are compared
between the sides. Median time of 3 repetitions.

Writes the "Answer-only loss" section of docs/benchmarks.md only when the 1-minute load average
stays at or under the core count.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_doc import Quiet, write_section_if_quiet  # noqa: E402

HEADING = "## Answer-only loss"
HIDDEN, VOCAB = 576, 49152


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def side(tokens: int, chunked: bool) -> dict[str, float]:
    """One side in this process: peak extra MB, seconds, loss and a gradient checksum."""
    import torch

    from api.finetune.answer_loss import CHUNK, answer_loss_sum

    torch.manual_seed(0)
    head = torch.nn.Linear(HIDDEN, VOCAB, bias=False)
    head.weight.requires_grad_(False)  # the frozen base's head, as in LoRA training
    hidden = torch.randn(tokens, HIDDEN, requires_grad=True)
    labels = torch.randint(0, VOCAB, (tokens,))
    chunk = CHUNK if chunked else tokens + 1
    times, loss, grad = [], 0.0, 0.0
    # ru_maxrss is the process's high-water mark: take the first repetition's rise over it
    before = _rss_mb()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    extra = 0.0
    for i in range(3):
        hidden.grad = None
        start = time.perf_counter()
        out = answer_loss_sum(head, hidden, labels, chunk=chunk)
        out.backward()
        times.append(time.perf_counter() - start)
        if i == 0:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            extra = peak - max(before, peak_before)
        loss, grad = float(out), float(hidden.grad.abs().sum())  # type: ignore[union-attr]
    return {"extra_mb": extra, "seconds": statistics.median(times), "loss": loss, "grad": grad}


def run_side(tokens: int, chunked: bool) -> dict[str, float]:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--side",
            "chunked" if chunked else "one-pass",
            "--tokens",
            str(tokens),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="2400,6400", help="answer positions, comma-separated")
    parser.add_argument("--side", choices=["chunked", "one-pass"], help=argparse.SUPPRESS)
    parser.add_argument("--max-load", type=float, default=float(os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    if args.side:  # the child
        print(json.dumps(side(int(args.tokens), args.side == "chunked")))
        return 0
    from api.finetune.answer_loss import CHUNK

    quiet = Quiet(args.max_load)
    started = datetime.now(UTC)
    rows = []
    for tokens in (int(t) for t in args.tokens.split(",")):
        print(f"==> {tokens} answer tokens", flush=True)
        one = run_side(tokens, chunked=False)
        chunked = run_side(tokens, chunked=True)
        rows.append((tokens, one, chunked))
    quiet.finish()
    lines = [
        HEADING,
        "",
        f"`scripts/bench_answer_loss.py`, {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"{quiet.describe()}. The "
        f"recipe's answer-only loss on SmolLM2-135M's shapes (hidden {HIDDEN}, vocabulary "
        f"{VOCAB:,}, frozen fp32 head): forward + backward of the summed cross-entropy over N "
        f"answer positions, chunked ({CHUNK} positions at a time, each chunk recomputed in the "
        "backward pass) vs one pass (the same function with one chunk). Each side in its own "
        "process; extra memory is the peak resident size during forward+backward over the size "
        "just before; time is the median of 3.",
        "",
        "| answer tokens | one pass: extra MB | chunked: extra MB | memory chunked/one pass "
        "| one pass: s | chunked: s | time chunked/one pass | loss equal | gradients equal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for tokens, one, ch in rows:
        same_loss = abs(one["loss"] - ch["loss"]) <= 1e-4 * abs(one["loss"])
        same_grad = abs(one["grad"] - ch["grad"]) <= 1e-4 * abs(one["grad"])
        lines.append(
            f"| {tokens:,} | {one['extra_mb']:.0f} | {ch['extra_mb']:.0f} | "
            f"{ch['extra_mb'] / one['extra_mb']:.2f}x | {one['seconds']:.2f} | "
            f"{ch['seconds']:.2f} | {ch['seconds'] / one['seconds']:.2f}x | "
            f"{'yes' if same_loss else 'NO'} | {'yes' if same_grad else 'NO'} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    write_section_if_quiet(args.out, HEADING, text, quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
