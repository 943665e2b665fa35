"""A GPTQ checkpoint of the tiny Llama, quantised here on the CPU with transformers' GPTQ
integration (GPTQConfig; optimum + gptqmodel from .venv/gptq). Run as a subprocess
(`python -m tests.utils.gptq_model SRC_HF OUT_DIR`) so the pytest process never imports
gptqmodel (it sets process-wide environment variables on import)."""

import sys
from pathlib import Path

# calibration text in the style of the training rows (tests/utils/tiny_model.py qa_csv)
CALIBRATION = [f"What is {i} plus {i}? {i} plus {i} is {2 * i}. Have a nice day!" for i in range(8)]


def quantise(source: Path, out: Path, bits: int = 4, group_size: int = 32) -> None:
    from api.finetune import gptq

    assert gptq.enable(), gptq.missing()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPTQConfig

    tokenizer = AutoTokenizer.from_pretrained(source)
    config = GPTQConfig(
        bits=bits, group_size=group_size, dataset=CALIBRATION, tokenizer=tokenizer, desc_act=False
    )
    model = AutoModelForCausalLM.from_pretrained(
        source, quantization_config=config, dtype=torch.float32, device_map="cpu"
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if (source / "chat_template.jinja").is_file():
        (out / "chat_template.jinja").write_text((source / "chat_template.jinja").read_text())


if __name__ == "__main__":
    quantise(Path(sys.argv[1]), Path(sys.argv[2]))
