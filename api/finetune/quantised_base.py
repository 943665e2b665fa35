"""Bases whose checkpoint is already quantised (config.json `quantization_config`), such as
GPTQ checkpoints (`TheBloke/...-GPTQ`) provisioned with `load_base_model.py --hf`.

Provisioning keeps the checkpoint as published (its quantisation config included), and
llama.cpp's converter dequantises GPTQ weights when it writes the serving GGUF, so such a base
is served like any other. Training LoRA on the quantised weights goes through transformers'
GPTQ integration (optimum + gptqmodel, api/finetune/gptq.py), on the CPU with gptqmodel's torch
kernel or on CUDA with its GPU kernels; a merged export dequantises the base to fp16 first. A
job on such a base is refused before any work, with the reason, where that cannot run.
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


def quantised_base_problem(
    name: str, hf_dir: Path, device: Any, precision: str = "fp32"
) -> str | None:
    """Why this host cannot fine-tune the base in `hf_dir` in the resolved `precision`, or
    None when it can."""
    config = quantisation(hf_dir)
    if config is None:
        return None
    method = str(config.get("quant_method", "unknown"))
    bits = config.get("bits")
    what = f"Base model {name!r} is a {method.upper()}-quantised checkpoint" + (
        f" ({bits}-bit)" if bits else ""
    )
    if method != "gptq":
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
