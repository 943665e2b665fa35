"""A LoRA adapter GGUF for the real SmolLM2 base without training: PEFT's random (non-zero)
initialisation, converted with llama.cpp's convert_lora_to_gguf.py, so that the adapter
visibly changes what the base writes."""

import subprocess
import sys
from pathlib import Path

from api.finetune.export import CONVERT_LORA


def random_lora_gguf(base_hf: Path, out_dir: Path, seed: int = 0) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_hf, dtype=torch.float32)
    config = LoraConfig(
        r=8,
        lora_alpha=64,
        target_modules=["q_proj", "v_proj"],
        init_lora_weights=False,  # random A and B: the adapter is not a no-op
    )
    peft_dir = out_dir / "adapter"
    get_peft_model(model, config).save_pretrained(peft_dir)
    target = out_dir / "adapter.gguf"
    subprocess.run(
        [sys.executable, str(CONVERT_LORA), str(peft_dir), "--base", str(base_hf)]
        + ["--outfile", str(target)],
        check=True,
        capture_output=True,
    )
    return target
