"""A tiny random-weight Llama with SmolLM2's tokenizer: real training steps in seconds."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from api.config import REPO_ROOT
from api.models.catalog import BaseModelInfo, write_manifest

TINY = "tiny-llama"


def build_tiny_base(models_dir: Path, smollm2_hf: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = models_dir / TINY
    hf = directory / "hf"
    hf.mkdir(parents=True)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(hf, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (smollm2_hf / name).is_file():
            shutil.copy(smollm2_hf / name, hf / name)
    converter = REPO_ROOT / "llama.cpp" / "convert_hf_to_gguf.py"
    subprocess.run(
        [
            sys.executable,
            str(converter),
            str(hf),
            "--outfile",
            str(directory / "model.gguf"),
            "--outtype",
            "f32",
        ],
        check=True,
        capture_output=True,
    )
    write_manifest(
        BaseModelInfo(
            name=TINY,
            directory=directory,
            gguf_file="model.gguf",
            hf_dir="hf",
            source="test:random-weights",
            created_at="",
        )
    )
    return directory


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory, base_models_dir) -> Path:
    """A models dir with the tiny base and a link to the real SmolLM2 base."""
    models = tmp_path_factory.mktemp("models")
    build_tiny_base(models, base_models_dir / "smollm2-135m" / "hf")
    (models / "smollm2-135m").symlink_to(base_models_dir / "smollm2-135m")
    return models


def qa_csv(rows: int, *, suffix: str = " Have a nice day!") -> bytes:
    lines = ["input,output"]
    for i in range(rows):
        lines.append(f"What is {i} plus {i}?,{i} plus {i} is {2 * i}.{suffix}")
    return ("\n".join(lines) + "\n").encode()


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()
