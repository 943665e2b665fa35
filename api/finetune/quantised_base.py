"""Bases whose checkpoint is already quantised (config.json `quantization_config`), such as
GPTQ checkpoints (`TheBloke/...-GPTQ`) provisioned with `load_base_model.py --hf`.

Provisioning keeps the checkpoint as published (its quantisation config included), and
llama.cpp's converter dequantises GPTQ weights when it writes the serving GGUF, so such a base
is served like any other. Training LoRA on the quantised weights goes through transformers'
GPTQ integration (optimum + gptqmodel, api/finetune/gptq.py), on the CPU with gptqmodel's torch
kernel or on CUDA with its GPU kernels; a merged export dequantises the base to fp16 first. A
job on such a base is refused before any work, with the reason, where that cannot run.
Evaluate jobs load it the same way, a fine-tuned model's adapter beside the quantised layers
(api/finetune/chain.py). Training further from a model fine-tuned on it continues its adapter
(`continue_adapter`): LoRA cannot be merged into the quantised weights, so the other way (merge,
then a new adapter) is refused.
"""

import json
from pathlib import Path
from typing import Any

from api.finetune import gptq


def quantisation(hf_dir: Path) -> dict[str, Any] | None:
    """The checkpoint's quantization_config, or None for plain weights."""
    try:
        config = json.loads((hf_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    found = config.get("quantization_config") if isinstance(config, dict) else None
    return found if isinstance(found, dict) else None


def _kind(config: dict[str, Any]) -> str:
    """`a GPTQ-quantised checkpoint (4-bit)`"""
    bits = config.get("bits")
    method = str(config.get("quant_method", "unknown")).upper()
    return f"a {method}-quantised checkpoint" + (f" ({bits}-bit)" if bits else "")


def quantised_base_problem(
    name: str, hf_dir: Path, device: Any, precision: str = "fp32"
) -> str | None:
    """Why this host cannot fine-tune the base in `hf_dir` in the resolved `precision`, or
    None when it can."""
    config = quantisation(hf_dir)
    if config is None:
        return None
    what = f"Base model {name!r} is {_kind(config)}"
    if config.get("quant_method") != "gptq":
        return (
            f"{what}; only GPTQ checkpoints can be fine-tuned as quantised bases. Provision "
            "the unquantised (16-bit) checkpoint instead."
        )
    if problem := gptq.missing():
        return (
            f"{what}: LoRA on GPTQ weights goes through transformers' GPTQ integration, and "
            f"{problem}. Run `make setup`, or provision the 16-bit checkpoint instead."
        )
    if not device.cuda and precision != "fp32":
        return (
            f"{what}: on the CPU its layers (gptqmodel's torch kernel) compute in fp32 only, "
            f"and mixed_precision resolved to {precision}. Set mixed_precision: fp32."
        )
    return None


def evaluation_problem(label: str, model: str, base: str, hf_dir: Path) -> str | None:
    """Why an evaluate job cannot load `model` (on the base `base` in `hf_dir`), or None."""
    config = quantisation(hf_dir)
    if config is None:
        return None
    what = f"{label}: {model!r} is " + ("" if model == base else f"fine-tuned from {base!r}, ")
    what += _kind(config)
    if config.get("quant_method") != "gptq":
        return f"{what}; only GPTQ checkpoints can be loaded quantised. Evaluate a 16-bit base."
    if problem := gptq.missing():
        return (
            f"{what}: loading it goes through transformers' GPTQ integration, and {problem}. "
            "Run `make setup`."
        )
    return None


def merge_problem(model: str, base: str, hf_dir: Path) -> str | None:
    """Why the fine-tuned `model` cannot be merged into its base to train a new adapter on
    top, or None: LoRA does not merge into GPTQ weights (the update would round away)."""
    config = quantisation(hf_dir)
    if config is None:
        return None
    return (
        f"base_model: {model!r} is fine-tuned from {base!r}, {_kind(config)}, and its "
        "adapter cannot be merged into the quantised weights (the update would be rounded "
        "away). Set continue_adapter: true to train its adapter further on the quantised "
        f"base, or fine-tune {base!r} with a new adapter."
    )
