"""What the recipe does differently on CUDA, checked on the CPU: a k-bit base is frozen without
PEFT's fp32 upcast, checkpointing is non-reentrant, the attention implementation is chosen
(and recorded) for padding-free batches, and Liger kernels are refused where they cannot run.
No GPU runs here: the CUDA-only kernels themselves are left to `make gpu-check`."""

import json
from dataclasses import replace

import pytest

from api.finetune.attention import FLASH, choose_attention
from api.finetune.device import fit
from api.finetune.spec import FineTuneSpec
from tests.utils.devices import CPU, H200, T4

H200_FLASH = replace(H200, flash_attn="2.8.3", liger_kernel="0.8.5")


def tiny_bf16_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).to(torch.bfloat16)


def test_kbit_ready_freezes_without_upcasting_and_lora_still_learns():
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from api.finetune import recipe

    # what the recipe did before: PEFT's preparation casts every 16-bit weight to fp32
    old = tiny_bf16_llama()
    old.is_loaded_in_4bit = True  # as a bitsandbytes base reports itself
    old = prepare_model_for_kbit_training(old, use_gradient_checkpointing=False)
    assert old.lm_head.weight.dtype == torch.float32
    assert old.get_input_embeddings().weight.dtype == torch.float32

    model = recipe.kbit_ready(tiny_bf16_llama(), gradient_checkpointing=True)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}  # head, embeddings, norms
    assert not any(p.requires_grad for p in model.parameters())
    ids = torch.tensor([[1, 5, 9, 3, 7, 2]])
    assert model.get_input_embeddings()(ids).requires_grad  # for reentrant checkpointing

    lora = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    lora.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = lora(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for n, p in lora.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for n, p in lora.named_parameters() if "lora_" not in n)


def test_checkpointing_is_non_reentrant_which_is_what_the_cpu_already_ran():
    from api.finetune import recipe

    assert recipe.checkpointing_kwargs(True) == {"use_reentrant": False}
    assert recipe.checkpointing_kwargs(False) is None
    # transformers' default for no kwargs (the CPU path so far) is the same checkpoint call
    implicit, explicit = tiny_bf16_llama(), tiny_bf16_llama()
    implicit.activation_checkpointing_enable(activation_checkpointing_kwargs=None)
    explicit.activation_checkpointing_enable(recipe.checkpointing_kwargs(True))
    calls = [m.model.layers[0]._gradient_checkpointing_func for m in (implicit, explicit)]
    assert calls[0].func is calls[1].func and calls[0].keywords == calls[1].keywords


@pytest.mark.parametrize(
    ("cuda", "precision", "flash", "chosen", "why"),
    [
        (True, "bf16", "2.8.3", FLASH, "flash_attention_2: flash-attn 2.8.3; packed batches use"),
        (True, "fp16", "2.8.3", FLASH, "flash_attention_2: flash-attn 2.8.3"),
        (True, "bf16", None, "sdpa", "sdpa: flash-attn is not installed or not usable"),
        (True, "fp32", "2.8.3", "sdpa", "sdpa: flash-attn needs fp16/bf16"),
        (False, "bf16", "2.8.3", None, "sdpa: transformers' default on the CPU"),
        (False, "fp32", None, None, "sdpa: transformers' default on the CPU"),
    ],
)
def test_attention_for_packed_batches(cuda, precision, flash, chosen, why):
    implementation, reason = choose_attention(cuda, precision, flash)
    assert implementation == chosen and reason.startswith(why)


def test_the_chosen_attention_is_what_the_model_loads_with(tiny_models_dir):
    from api.finetune import recipe
    from tests.utils.tiny_model import TINY

    hf = tiny_models_dir / TINY / "hf"
    default = recipe.load_model(hf, 16, cuda=False, precision="fp32")
    assert default.config._attn_implementation == "sdpa"  # the CPU path: nothing passed
    chosen = recipe.load_model(hf, 16, cuda=False, precision="fp32", attention="eager")
    assert chosen.config._attn_implementation == "eager"


def test_liger_kernel_needs_cuda_the_package_and_not_orpo():
    on_cpu = fit(FineTuneSpec(model_name="t", liger_kernel=True), CPU)[1]
    assert len(on_cpu) == 1 and on_cpu[0].startswith(
        "liger_kernel: Liger's kernels are Triton GPU kernels and need a CUDA GPU; this host "
        "has none: torch.cuda.is_available() is False"
    )
    without = fit(FineTuneSpec(model_name="t", liger_kernel=True), H200)[1]
    assert without == [
        "liger_kernel: needs the liger-kernel package (it is not installed); install the "
        "version pinned in pyproject.toml's `gpu` extra (pip install '.[gpu]'), or leave "
        "liger_kernel false."
    ]
    broken = replace(H200, notes=("liger-kernel 0.8.5 cannot be imported: ImportError: triton",))
    assert (
        "(liger-kernel 0.8.5 cannot be imported: ImportError: triton)"
        in (fit(FineTuneSpec(model_name="t", liger_kernel=True), broken)[1][0])
    )
    assert fit(FineTuneSpec(model_name="t", liger_kernel=True), H200_FLASH)[1] == []
    assert fit(FineTuneSpec(model_name="t", liger_kernel=True, method="dpo"), H200_FLASH)[1] == []
    with pytest.raises(ValueError, match="liger_kernel applies to methods sft and dpo"):
        FineTuneSpec(model_name="t", liger_kernel=True, method="orpo")


def test_the_summary_records_the_attention_the_gpu_will_use(tmp_path, tiny_models_dir):
    from api.config import Settings
    from api.finetune.kinds import fine_tune_kinds
    from api.finetune.service import Upload, submit_fine_tune
    from api.jobs.runner import JobRunner
    from api.jobs.store import JobStore
    from api.models.catalog import BaseCatalog
    from api.models.registry import VariantRegistry
    from tests.utils.tiny_model import TINY, qa_csv

    settings = Settings(data_dir=tmp_path, base_models_dir=tiny_models_dir)
    store = JobStore(settings.jobs_db)
    summaries = {}
    for name, found in (("flash", H200_FLASH), ("plain", H200), ("old", T4), ("cpu", CPU)):
        job, _ = submit_fine_tune(
            settings=settings,
            catalog=BaseCatalog(tiny_models_dir),
            registry=VariantRegistry(settings.registry_path),
            store=store,
            runner=JobRunner(store, settings, kinds=fine_tune_kinds()),
            spec=FineTuneSpec(model_name=f"t-{name}", base_model=TINY, export="none"),
            train=Upload("t.csv", qa_csv(12)),
            eval_=None,
            idempotency_key=None,
            device=found,
        )
        summaries[name] = store.get(job.id).progress["dataset"]["attention"]
        assert json.loads(job.files.spec.read_text())["liger_kernel"] is False
    assert summaries["flash"].startswith("flash_attention_2: flash-attn 2.8.3")
    assert summaries["plain"].startswith("sdpa: flash-attn is not installed")
    assert summaries["old"].startswith("sdpa: flash-attn is not installed")  # T4: fp16, no flash
    assert summaries["cpu"].startswith("sdpa: transformers' default on the CPU")


def test_orpo_gets_the_lora_model_of_a_kbit_base_so_trl_does_not_upcast_it(tmp_path, monkeypatch):
    import torch
    import trl.experimental.orpo as orpo
    from peft import LoraConfig, PeftModel
    from trl import SFTConfig

    from api.finetune import recipe
    from api.finetune.preference_recipe import preference_trainer

    given = {}
    monkeypatch.setattr(orpo, "ORPOTrainer", lambda **kwargs: given.update(kwargs) or "trainer")
    model = recipe.kbit_ready(tiny_bf16_llama(), gradient_checkpointing=False)
    model.is_loaded_in_4bit = True  # as a bitsandbytes base reports itself
    args = SFTConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        max_steps=1,
        gradient_checkpointing_kwargs=recipe.checkpointing_kwargs(True),
    )
    spec = FineTuneSpec(model_name="t", method="orpo")
    lora = LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")
    assert preference_trainer(spec, args, model, None, lora, None, None, []) == "trainer"
    assert isinstance(given["model"], PeftModel) and given["peft_config"] is None
    assert given["model"].get_base_model().lm_head.weight.dtype == torch.bfloat16
    assert given["args"].gradient_checkpointing_kwargs == {"use_reentrant": False}  # carried
