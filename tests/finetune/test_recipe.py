"""The recipe on the tiny model, in-process: LoRA weights move, base weights do not."""

import json

import pytest
from safetensors.torch import load_file

from api.config import Settings
from api.finetune.kinds import fine_tune_kinds
from api.finetune.service import Upload, submit_fine_tune
from api.finetune.spec import FineTuneSpec
from api.jobs.runner import JobRunner
from api.jobs.store import JobStore
from api.models.catalog import BaseCatalog
from api.models.registry import VariantRegistry
from tests.utils.tiny_model import TINY, qa_csv


@pytest.fixture
def prepared_job(tmp_path, tiny_models_dir):
    settings = Settings(data_dir=tmp_path, base_models_dir=tiny_models_dir)
    store = JobStore(settings.jobs_db)
    spec = FineTuneSpec(
        model_name="tuned",
        base_model=TINY,
        max_steps=4,
        batch_size=4,
        learning_rate=1e-2,
        checkpoint_steps=2,
        eval_rows=2,
        eval_max_new_tokens=4,
    )
    job, _ = submit_fine_tune(
        settings=settings,
        catalog=BaseCatalog(tiny_models_dir),
        registry=VariantRegistry(settings.registry_path),
        store=store,
        runner=JobRunner(store, settings, kinds=fine_tune_kinds()),
        spec=spec,
        train=Upload("t.csv", qa_csv(24)),
        eval_=None,
        idempotency_key=None,
    )
    return job, store, tiny_models_dir / TINY / "hf"


def test_training_changes_lora_weights_only(prepared_job):
    from api.finetune import recipe

    job, store, hf_dir = prepared_job
    spec = FineTuneSpec(**json.loads((job.job_dir / "spec.json").read_text()))
    trainer, _, info = recipe.train(spec, job.job_dir, hf_dir, store, resume=False)
    base = load_file(hf_dir / "model.safetensors")
    lora_b, frozen = [], 0
    for name, param in trainer.model.named_parameters():
        if "lora_B" in name:
            lora_b.append(param.detach().abs().sum().item())
            assert param.requires_grad
        elif "lora_" not in name:
            key = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert not param.requires_grad, name
            assert (param.detach().cpu() == base[key]).all(), f"{name} changed"
            frozen += 1
    assert lora_b and all(total > 0 for total in lora_b)  # B starts at zero
    assert frozen > 10
    assert info["device"] == "cpu" and info["bits"] == 16
    assert trainer.args.optim == "adamw_torch" and info["optimizer"] == "adamw_torch"
    assert trainer.state.global_step == 4
    assert sorted(p.name for p in (job.job_dir / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]
    events = [e.type for e in store.events(job.id)]
    assert events.count("progress") == 4 and "checkpoint" in events
    progress = store.get(job.id).progress
    assert progress["step"] == 4 and progress["total_steps"] == 4
    assert progress["dataset"]["train_rows"] == 19


def test_quantised_bits_need_cuda(prepared_job):
    from api.finetune import recipe

    job, store, hf_dir = prepared_job
    spec = FineTuneSpec(model_name="tuned", base_model=TINY, bits=4)
    with pytest.raises(RuntimeError, match="bits=4 \\(QLoRA/int8\\) needs a CUDA GPU"):
        recipe.train(spec, job.job_dir, hf_dir, store, resume=False)


def test_the_chosen_optimizer_reaches_the_trainer(prepared_job):
    from api.finetune import recipe

    job, store, hf_dir = prepared_job
    spec = FineTuneSpec(**json.loads((job.job_dir / "spec.json").read_text()))
    assert spec.optimizer == "adamw_torch"  # the resolved spec the job saved (CPU default)
    spec = spec.model_copy(update={"optimizer": "adamw_torch_fused", "max_steps": 1})
    trainer, _, info = recipe.train(spec, job.job_dir, hf_dir, store, resume=False)
    assert trainer.args.optim == "adamw_torch_fused" and info["optimizer"] == "adamw_torch_fused"
    assert trainer.optimizer.optimizer.defaults["fused"] is True  # torch's AdamW, fused
    assert trainer.state.global_step == 1
    # the CPU path as before: transformers' default attention, its default (non-reentrant)
    # checkpointing said explicitly, no Liger (api/finetune/attention.py, recipe.checkpointing_kwargs)
    assert trainer.model.get_base_model().config._attn_implementation == "sdpa"
    assert info["attention"].startswith("sdpa: transformers' default on the CPU")
    assert trainer.args.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert trainer.args.use_liger_kernel is False and info["liger_kernel"] is False


CPU_REPORT = {
    "cuda": False,
    "gpus": [],
    "torch": "2.13.0+cpu",
    "torch_cuda": None,
    "bitsandbytes": "0.50.2",
    "notes": [],
}


def test_paged_optimizer_without_cuda_fails_before_loading(prepared_job, monkeypatch):
    from api.finetune import recipe

    job, store, hf_dir = prepared_job
    monkeypatch.setattr(recipe, "inspect", lambda: CPU_REPORT)
    monkeypatch.setattr(recipe, "load_model", None)  # never reached
    spec = FineTuneSpec(model_name="tuned", base_model=TINY, optimizer="paged_adamw_8bit")
    with pytest.raises(
        RuntimeError,
        match="^optimizer: paged_adamw_8bit is a bitsandbytes "
        "paged optimizer, which needs a CUDA GPU",
    ):
        recipe.train(spec, job.job_dir, hf_dir, store, resume=False)


def test_required_cuda_that_is_gone_fails_the_job_instead_of_using_the_cpu(
    prepared_job, monkeypatch
):
    from api.finetune import recipe

    job, store, hf_dir = prepared_job
    monkeypatch.setattr(recipe, "inspect", lambda: CPU_REPORT)
    monkeypatch.setattr(recipe, "load_model", None)
    spec = FineTuneSpec(model_name="tuned", base_model=TINY, bits=16)
    with pytest.raises(
        RuntimeError, match="^LLM_REQUIRE_CUDA is set but torch.cuda.is_available\\(\\) is False"
    ):
        recipe.train(spec, job.job_dir, hf_dir, store, resume=False, require_cuda=True)
    recipe.check_device(spec, require_cuda=False)  # the same device without the setting: fine


def test_bf16_on_the_cpu_keeps_the_frozen_base_in_bf16_and_the_loss_of_fp32(prepared_job):
    import torch

    from api.finetune import recipe

    job, store, hf_dir = prepared_job
    reason = store.get(job.id).progress["dataset"]["mixed_precision"]
    saved = json.loads((job.job_dir / "spec.json").read_text())
    assert reason.startswith(f"{saved['mixed_precision']}: auto on the CPU")  # recorded, with why
    losses = {}
    for precision in ("fp32", "bf16"):
        spec = FineTuneSpec(**{**saved, "mixed_precision": precision})
        trainer, _, info = recipe.train(spec, job.job_dir, hf_dir, store, resume=False)
        assert info["mixed_precision"] == precision
        dtypes = {
            "lora" if "lora_" in n else "base": p.dtype for n, p in trainer.model.named_parameters()
        }
        expected = torch.bfloat16 if precision == "bf16" else torch.float32
        assert dtypes == {"base": expected, "lora": torch.float32}  # adapters train in fp32
        losses[precision] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses["bf16"]) == len(losses["fp32"]) == 4
    # bf16 rounds the base's weights and activations: the same descent within bf16 noise
    for fp32, bf16 in zip(losses["fp32"], losses["bf16"], strict=True):
        assert bf16 == pytest.approx(fp32, rel=0.03)
