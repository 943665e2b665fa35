"""Merge a LoRA adapter into its base shard by shard, in the base's own dtype.

PEFT's `merge_and_unload` needs the whole model in memory: in fp32 a 7B base is ~28 GB,
more than a 24 GB host has. A LoRA merge is only `W += scale * B @ A` per target weight, so
this reads one safetensors shard of the base at a time, adds each update (computed in fp32
for the one tensor, then cast back to the weight's dtype) and writes the shard out: peak
memory is one shard plus the adapter, and every byte of the base is read and written once.

Adapters this cannot merge exactly (DoRA, per-module rank or alpha patterns, extra trained
modules, fan-in-fan-out layers, LoRA biases, ...) are reported by `unsupported`, and the
caller falls back to PEFT.
"""

import json
import math
import shutil
from pathlib import Path

ADAPTER_PREFIX = "base_model.model."
_NEUTRAL: dict[str, object] = {
    "use_dora": False,
    "fan_in_fan_out": False,
    "bias": "none",
    "lora_bias": False,
}
_EMPTY = (
    "rank_pattern",
    "alpha_pattern",
    "modules_to_save",
    "layer_replication",
    "trainable_token_indices",
    "target_parameters",
)


class MergeError(Exception):
    """The adapter does not fit the base (a target weight is missing or has another shape)."""


def unsupported(config: dict[str, object]) -> str | None:
    """Why the streaming merge cannot merge this adapter exactly (None: it can)."""
    if config.get("peft_type") != "LORA":
        return f"peft_type {config.get('peft_type')!r}"
    for key, value in _NEUTRAL.items():
        if config.get(key, value) != value:
            return f"{key}={config.get(key)!r}"
    for key in _EMPTY:
        if config.get(key):
            return f"{key} is set"
    return None


def _scaling(config: dict[str, object]) -> float:
    r, alpha = float(config["r"]), float(config["lora_alpha"])  # type: ignore[arg-type]
    return alpha / (math.sqrt(r) if config.get("use_rslora") else r)


def _updates(adapter_dir: Path) -> dict[str, tuple[object, object]]:
    """{base weight name: (A, B)} from the adapter's safetensors."""
    from safetensors.torch import load_file

    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    pairs: dict[str, dict[str, object]] = {}
    for key, tensor in tensors.items():
        name = key.removeprefix(ADAPTER_PREFIX)
        for part in ("lora_A", "lora_B"):
            marker = f".{part}."
            if marker in name:
                module = name.split(marker)[0]
                pairs.setdefault(f"{module}.weight", {})[part] = tensor
    missing = [k for k, v in pairs.items() if set(v) != {"lora_A", "lora_B"}]
    if missing:
        raise MergeError(f"The adapter has half a LoRA pair for {missing[:3]}.")
    return {k: (v["lora_A"], v["lora_B"]) for k, v in pairs.items()}


def _shards(base_hf: Path) -> list[str]:
    index = base_hf / "model.safetensors.index.json"
    if index.is_file():
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    if (base_hf / "model.safetensors").is_file():
        return ["model.safetensors"]
    raise MergeError(f"No safetensors weights in {base_hf}.")


def merge_shards(adapter_dir: Path, base_hf: Path, out_dir: Path) -> dict[str, int]:
    """Write the merged checkpoint's weights (and config, index) into `out_dir`; returns
    {"bytes_read": ..., "bytes_written": ..., "merged": number of updated weights}."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    if reason := unsupported(config):
        raise MergeError(f"The streaming merge cannot merge this adapter ({reason}).")
    scale = _scaling(config)
    updates = _updates(adapter_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done: set[str] = set()
    read = written = 0
    for shard in _shards(base_hf):
        merged: dict[str, torch.Tensor] = {}
        with safe_open(str(base_hf / shard), framework="pt") as f:
            metadata = f.metadata() or {}
            for key in f.keys():
                weight = f.get_tensor(key)
                read += weight.numel() * weight.element_size()
                if key in updates:
                    a, b = updates[key]
                    delta = b.to(torch.float32) @ a.to(torch.float32)  # type: ignore[attr-defined]
                    if delta.shape != weight.shape:
                        raise MergeError(
                            f"The adapter's update for {key} is {tuple(delta.shape)}, the "
                            f"base's weight {tuple(weight.shape)}: not this adapter's base."
                        )
                    weight = (weight.to(torch.float32) + scale * delta).to(weight.dtype)
                    done.add(key)
                merged[key] = weight.contiguous()
        save_file(merged, str(out_dir / shard), metadata={**metadata, "format": "pt"})
        written += sum(t.numel() * t.element_size() for t in merged.values())
        del merged
    if missing := sorted(set(updates) - done):
        raise MergeError(f"The base has no weight {missing[0]} that the adapter updates.")
    for name in ("config.json", "model.safetensors.index.json", "generation_config.json"):
        if (base_hf / name).is_file():
            shutil.copy(base_hf / name, out_dir / name)
    return {"bytes_read": read, "bytes_written": written, "merged": len(done)}
