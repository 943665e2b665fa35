"""GPTQ bases through transformers' GPTQ integration (optimum + gptqmodel): load for LoRA
training, dequantise to 16-bit for the merged export.

The packages live in their own directory, GPTQ_DIR (.venv/gptq, installed by `make setup` from
requirements-gptq.txt with --no-deps), which only a process working on a GPTQ base puts on
sys.path: their declared requirements would replace this project's torch/numpy pins, and with
gptqmodel importable PEFT imports it for every LoRA layer it creates. On the CPU gptqmodel
runs its torch kernel (TorchAtenLinear); on CUDA it picks its GPU kernels.
"""

import importlib.util
import os
import shutil
import sys
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

# LLM_GPTQ_DIR: another directory (the GPU check's device machine unpacks them under /tmp)
GPTQ_DIR = Path(os.environ.get("LLM_GPTQ_DIR") or Path(sys.prefix) / "gptq")
PACKAGES = ("gptqmodel", "optimum")
# gptqmodel's kernel choice for training: on CUDA `auto` may pick a forward-only kernel
# (Marlin, Machete on Hopper); `auto_trainable` picks one with a backward pass (Triton, torch)
TRAINABLE = "auto_trainable"


def enable() -> bool:
    """Put GPTQ_DIR on sys.path; True when transformers can then load GPTQ checkpoints."""
    if GPTQ_DIR.is_dir() and str(GPTQ_DIR) not in sys.path:
        sys.path.append(str(GPTQ_DIR))
        importlib.invalidate_caches()
    # gptqmodel's optional C++ packer is compiled on first use (minutes on 2 cores); the
    # Python packer gives the same weights and quantising is rare (tests, tiny bases).
    os.environ.setdefault("GPTQMODEL_DISABLE_PACK_EXT", "1")
    return all(importlib.util.find_spec(name) is not None for name in PACKAGES)


def missing() -> str | None:
    """Why GPTQ checkpoints cannot be loaded in this environment, or None when they can.
    Looks without importing or touching sys.path (the API process never loads them)."""
    where = [str(GPTQ_DIR), *sys.path]
    if all(PathFinder.find_spec(name, where) is not None for name in PACKAGES):
        return None
    return (
        f"the gptqmodel and optimum packages are not installed in {GPTQ_DIR} (`make setup` "
        "installs them from requirements-gptq.txt)"
    )


def load_kwargs(cuda: bool, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """from_pretrained arguments for a GPTQ base: fp16 on CUDA (the GPU kernels' dtype), fp32
    on the CPU (gptqmodel's torch kernel; the CPU's bf16 autocast is not applied to GPTQ
    layers). With `config` (the checkpoint's quantization_config) the base is loaded to be
    trained: the kernel chosen among those with a backward pass (TRAINABLE)."""
    import torch

    kwargs: dict[str, Any] = (
        {"dtype": torch.float16, "device_map": {"": 0}}
        if cuda
        else {"dtype": torch.float32, "device_map": "cpu"}
    )
    if config is not None:
        from transformers import GPTQConfig

        # only its loading attributes (backend) override the checkpoint's config
        kwargs["quantization_config"] = GPTQConfig(bits=config["bits"], backend=TRAINABLE)
    return kwargs


def quantise(
    source: Path,
    out: Path,
    calibration: list[str],
    bits: int = 4,
    group_size: int = 32,
    cuda: bool = False,
) -> None:
    """Quantise the 16/32-bit checkpoint `source` with GPTQ (transformers' GPTQConfig) into
    `out`, tokenizer and chat template with it. Provisioning takes published GPTQ checkpoints;
    this makes small ones for the tests (CPU) and the GPU check (CUDA)."""
    if not enable():
        raise RuntimeError(f"Cannot quantise with GPTQ: {missing()}.")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPTQConfig

    tokenizer = AutoTokenizer.from_pretrained(source)
    config = GPTQConfig(
        bits=bits, group_size=group_size, dataset=calibration, tokenizer=tokenizer, desc_act=False
    )
    model = AutoModelForCausalLM.from_pretrained(
        source,
        quantization_config=config,
        dtype=torch.float16 if cuda else torch.float32,
        device_map={"": 0} if cuda else "cpu",
        use_safetensors=True,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if (source / "chat_template.jinja").is_file():
        shutil.copy(source / "chat_template.jinja", out / "chat_template.jinja")


def targets(model: Any, target_modules: list[str] | str) -> list[str] | str:
    """PEFT's `all-linear` finds nn.Linear layers only; on a GPTQ model it means the quantised
    linears (every one but the output head, which GPTQ leaves unquantised). Others unchanged."""
    if target_modules != "all-linear" or getattr(model.config, "quantization_config", None) is None:
        return target_modules
    from gptqmodel.nn_modules.qlinear import BaseQuantLinear

    names = {
        n.rpartition(".")[2] for n, m in model.named_modules() if isinstance(m, BaseQuantLinear)
    }
    return sorted(names) or target_modules


def dequantise(hf_dir: Path, out_dir: Path) -> Path:
    """Write `hf_dir`'s GPTQ checkpoint as a plain fp16 checkpoint (every quantised linear
    replaced by nn.Linear with its dequantised weight, no quantization_config) in `out_dir`,
    with the tokenizer and generation config, for merging and GGUF conversion."""
    if not enable():
        raise RuntimeError(f"Cannot dequantise the GPTQ base {hf_dir.parent.name!r}: {missing()}.")
    import torch
    from gptqmodel.nn_modules.qlinear import BaseQuantLinear
    from transformers import AutoModelForCausalLM

    # on the CPU gptqmodel selects its torch kernel, whose weights dequantise as stored
    model: Any = AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float16, device_map="cpu", use_safetensors=True
    )
    for name, module in list(model.named_modules()):
        if not isinstance(module, BaseQuantLinear):
            continue
        linear = torch.nn.Linear(
            module.in_features, module.out_features, bias=module.bias is not None
        ).to(torch.float16)
        weight = module.dequantize_weight().T.detach().to("cpu", torch.float16)
        linear.weight = torch.nn.Parameter(weight.contiguous(), requires_grad=False)
        if module.bias is not None:
            linear.bias = torch.nn.Parameter(module.bias.detach().to(torch.float16))
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, linear)
    del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.save_pretrained(out_dir, safe_serialization=True)
    for path in hf_dir.iterdir():
        if path.is_file() and (path.name.startswith("tokenizer") or path.suffix == ".jinja"):
            shutil.copy(path, out_dir / path.name)
    if (hf_dir / "generation_config.json").is_file():
        shutil.copy(hf_dir / "generation_config.json", out_dir / "generation_config.json")
    return out_dir
