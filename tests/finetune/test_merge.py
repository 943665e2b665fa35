"""The shard-by-shard merge: the same weights (and logits) as PEFT's merge_and_unload, in the
base's own dtype, across shards; adapters it cannot merge exactly go to PEFT."""

import json
import shutil

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from api.config import REPO_ROOT
from api.finetune.export import merge
from api.finetune.merge import MergeError, merge_shards, unsupported


def tiny_base(path, dtype, hidden=64, shard=None):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(path, safe_serialization=True, max_shard_size=shard or "10GB")
    return path


def adapter(base_path, out, **lora):
    base = LlamaForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", **lora)
    peft = get_peft_model(base, config)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.05)  # B is zero at init: give the update a size
    peft.save_pretrained(out)
    return out


def peft_merged(base_path, adapter_dir):
    base = LlamaForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload().state_dict()


def merged_weights(out):
    weights = {}
    for shard in out.glob("*.safetensors"):
        weights |= load_file(str(shard))
    return weights


@pytest.mark.parametrize("use_rslora", [False, True])
def test_fp32_merge_matches_peft(tmp_path, use_rslora):
    base = tiny_base(tmp_path / "base", torch.float32)
    lora = adapter(base, tmp_path / "adapter", use_rslora=use_rslora)
    stats = merge_shards(lora, base, tmp_path / "out")
    expected = peft_merged(base, lora)
    got = merged_weights(tmp_path / "out")
    assert stats["merged"] == 2 * 7  # every linear layer of both blocks
    assert stats["bytes_read"] == stats["bytes_written"]
    for key, weight in got.items():
        assert weight.dtype == torch.float32
        torch.testing.assert_close(weight, expected[key], rtol=0, atol=1e-6)
    model = LlamaForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32)
    reference = PeftModel.from_pretrained(
        LlamaForCausalLM.from_pretrained(base, dtype=torch.float32), lora
    )
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=1e-4, atol=1e-4)


def test_bf16_base_stays_bf16_across_shards(tmp_path):
    base = tiny_base(tmp_path / "base", torch.bfloat16, shard="60KB")
    assert (base / "model.safetensors.index.json").is_file()
    lora = adapter(base, tmp_path / "adapter")
    merge_shards(lora, base, tmp_path / "out")
    assert len(list((tmp_path / "out").glob("*.safetensors"))) == len(
        list(base.glob("*.safetensors"))
    )
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    got = merged_weights(tmp_path / "out")
    assert set(got) == set(index["weight_map"])
    expected = peft_merged(base, lora)  # fp32 reference, rounded once to bf16
    for key, weight in got.items():
        assert weight.dtype == torch.bfloat16
        torch.testing.assert_close(weight, expected[key].to(torch.bfloat16), rtol=0, atol=0)


def test_a_foreign_adapter_is_refused_with_a_reason(tmp_path):
    lora = adapter(tiny_base(tmp_path / "base", torch.float32), tmp_path / "adapter")
    other = tiny_base(tmp_path / "other", torch.float32, hidden=32)
    with pytest.raises(MergeError, match="not this adapter's base"):
        merge_shards(lora, other, tmp_path / "out")


def test_dora_is_merged_by_peft(tmp_path):
    base = tiny_base(tmp_path / "base", torch.float32)
    lora = adapter(base, tmp_path / "adapter", use_dora=True)
    config = json.loads((lora / "adapter_config.json").read_text())
    assert unsupported(config) == "use_dora=True"
    with pytest.raises(MergeError, match="use_dora"):
        merge_shards(lora, base, tmp_path / "direct")
    tokenizer = REPO_ROOT / "shared" / "models" / "smollm2-135m" / "hf"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer / name, lora / name)
    merge(lora, base, tmp_path / "out")  # falls back to PEFT in fp32
    expected = peft_merged(base, lora)
    for key, weight in merged_weights(tmp_path / "out").items():
        torch.testing.assert_close(weight, expected[key], rtol=0, atol=1e-6)
