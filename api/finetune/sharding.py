"""`sharding: fsdp`: a job's `gpus` ranks share the base instead of each holding a copy.

With `ddp` (the default) every rank holds the whole base, so a base that does not fit one
GPU does not fit N. With `fsdp` the recipe runs under `accelerate launch --use_fsdp` (PyTorch
FSDP1, FULL_SHARD): each decoder layer is its own FSDP unit whose weights are split across
the ranks and gathered for its forward and backward only. What the launch sets, and why:

- auto-wrap by the base's decoder layer class (`_no_split_modules` of its architecture,
  resolved from config.json when the job starts); the Trainer then swaps in PEFT's
  `fsdp_auto_wrap_policy` (transformers/distributed/fsdp.py `update_fsdp_plugin_peft`), which
  reads the same class names from FSDP_TRANSFORMER_CLS_TO_WRAP and wraps the LoRA layers as
  units of their own;
- `use_orig_params`: frozen base weights and trainable LoRA weights in one unit (accelerate's
  launch help: "support for interspersed frozen and trainable parameters");
- FULL_STATE_DICT: `Trainer.save_model` gathers the weights on rank 0, which writes one
  ordinary PEFT adapter (adapter_model.safetensors) that the export reads as after DDP;
- CPU-RAM-efficient loading with module-state sync: rank 0 reads the checkpoint, the others
  start empty and receive the weights when the model is wrapped (accelerate requires
  sync_module_states with it).

QLoRA under FSDP (bits 4) follows bitsandbytes' FSDP-QLoRA guide (docs/source/fsdp_qlora.md,
0.50.2): `bnb_4bit_quant_storage` equal to the dtype the rest of the model is loaded in, so
FSDP can flatten the 4-bit weights with the others (the recipe's load_model does this).

What cannot be sharded is refused at submission with the reason (`sharding_problem`). FSDP
needs CUDA: accelerate 1.15 runs FSDP on GPU-type devices only. On gloo CPU ranks the FSDP
plugin's sync_module_states asks for a GPU and the Accelerator fails to start; without it
the world stays MULTI_CPU, i.e. DDP (state.py; tests/finetune/test_fsdp.py shows both).

This module imports neither torch nor transformers at import time (the API process imports it).
"""

import json
from pathlib import Path
from typing import Any

from api.finetune.quantised_base import quantisation
from api.finetune.spec import FineTuneSpec

FSDP_BITS = (4, 16)


def sharding_problem(spec: FineTuneSpec, cuda: bool, hf_dir: Path) -> str | None:
    """Why this job cannot train with `spec.sharding`, or None. `spec` is fitted to the
    device (bits resolved)."""
    if spec.sharding != "fsdp":
        return None
    if spec.gpus < 2:
        return (
            "sharding: fsdp splits the base across several GPUs, and gpus is 1; ask for "
            "gpus: 2 or more, or leave sharding at ddp (one GPU trains the whole base)."
        )
    if not cuda:
        return (
            "sharding: fsdp needs CUDA GPUs, and jobs here train on CPU processes (gloo), "
            "where accelerate does not run FSDP; use sharding: ddp."
        )
    if quantisation(hf_dir) is not None:
        return (
            f"sharding: fsdp cannot shard base model {spec.base_model!r}: its checkpoint is "
            "already quantised (GPTQ), and FSDP shards floating-point weights only. Provision "
            "the 16-bit checkpoint and train it with bits: 4 (FSDP-QLoRA) or 16, or use "
            "sharding: ddp."
        )
    if spec.bits not in FSDP_BITS:
        return (
            f"sharding: fsdp works with bits 4 (FSDP-QLoRA, 4-bit weights stored in the "
            f"compute dtype) or 16, not bits {spec.bits}: int8 weights cannot be flattened "
            "into FSDP's shards. Set bits: 4 or 16, or use sharding: ddp."
        )
    if spec.method != "sft":
        return (
            f"sharding: fsdp is offered for method sft; method {spec.method} trains with "
            "sharding: ddp."
        )
    if not architectures(hf_dir):
        return (
            f"sharding: fsdp wraps the base's decoder layers, and base model "
            f"{spec.base_model!r} names no architecture in its config.json; use sharding: ddp."
        )
    return None


def architectures(hf_dir: Path) -> list[str]:
    """The model classes config.json names (`LlamaForCausalLM`), or none."""
    try:
        config = json.loads((hf_dir / "config.json").read_text())
    except (OSError, ValueError):
        return []
    names = config.get("architectures") if isinstance(config, dict) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def layer_classes(hf_dir: Path) -> list[str]:
    """The class names FSDP wraps as units: the architecture's `_no_split_modules` (the
    blocks transformers never splits across devices: the decoder layers). Imports
    transformers (the launcher's process, not the API's)."""
    import transformers

    for name in architectures(hf_dir):
        found: Any = getattr(transformers, name, None)
        classes = list(getattr(found, "_no_split_modules", None) or [])
        if classes:
            return classes
    raise RuntimeError(
        f"sharding: fsdp: transformers {transformers.__version__} knows no decoder layer class "
        f"for {architectures(hf_dir) or 'this base'} ({hf_dir / 'config.json'}); train it "
        "with sharding: ddp."
    )


def fsdp_launch_arguments(classes: list[str]) -> list[str]:
    """`accelerate launch` arguments for FSDP (they become FSDP_* environment variables
    that accelerate's FullyShardedDataParallelPlugin and PEFT read in each rank)."""
    return [
        "--use_fsdp",
        "--fsdp_version",
        "1",  # FULL_SHARD, use_orig_params and the FSDP-QLoRA guide are FSDP1's
        "--fsdp_sharding_strategy",
        "FULL_SHARD",
        "--fsdp_auto_wrap_policy",
        "TRANSFORMER_BASED_WRAP",
        "--fsdp_transformer_layer_cls_to_wrap",
        ",".join(classes),
        "--fsdp_use_orig_params",
        "true",
        "--fsdp_state_dict_type",
        "FULL_STATE_DICT",
        "--fsdp_cpu_ram_efficient_loading",
        "true",
        "--fsdp_sync_module_states",
        "true",
        "--fsdp_offload_params",
        "false",
        "--fsdp_backward_prefetch",
        "BACKWARD_PRE",
    ]
