"""The fine-tuning recipe: load -> format -> train -> evaluate -> save. Read top to bottom.

Run by the job runner as a step process (api/jobs/step.py: `python -m api.finetune.recipe
JOB_DIR --db JOBS_DB [--resume]`), so an out-of-memory kill or a crash fails this job only.
This is the only module that imports torch, TRL and PEFT. With `gpus` above 1 that process
launches N ranks of this module (api/finetune/ranks.py); rank 0 alone reports and saves.

Inputs in JOB_DIR (api/jobs/layout.py): spec.json (the resolved FineTuneSpec), run.json (base
checkpoint path; whether CUDA is required), data/{train,validation,test}.jsonl (chat
messages). Outputs: adapter/ (LoRA weights as safetensors), checkpoints/ (resumable),
metrics.json, or error.txt with the reason it failed.
"""

import sys

if __name__ == "__main__":  # gpus > 1: this process launches the ranks, without torch and TRL
    from api.finetune.ranks import launch_first

    launch_first("api.finetune.recipe", description="Run one fine-tuning job.")

import contextlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel
from rouge_score import rouge_scorer
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
)
from trl import SFTConfig, SFTTrainer

from api.finetune import gptq, ranks
from api.finetune.answer_loss import answer_loss_sum
from api.finetune.attention import choose_attention
from api.finetune.chain import with_parent
from api.finetune.device import TrainingDevice, fit, inspect, require_cuda_message
from api.finetune.formats import recipe_system_prompt, template_for
from api.finetune.lengths import CHATML_TEMPLATE
from api.finetune.precision import torch_dtype_name
from api.finetune.predictions import record, write_predictions
from api.finetune.preference_recipe import preference_metrics, preference_trainer, to_preference
from api.finetune.quantised_base import quantisation
from api.finetune.spec import FineTuneSpec
from api.jobs import step
from api.jobs.cpu_priority import yield_cpu
from api.jobs.layout import JobFiles
from api.jobs.store import JobStore


# ---------------------------------------------------------------- load
def load_tokenizer(hf_dir: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, trust_remote_code=False)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    # Padding with EOS would teach nothing wrong under loss masks, but collators that mask
    # pad ids would then also mask the real EOS; use a distinct token where one exists.
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        if tokenizer.unk_token is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    hf_dir: Path,
    bits: int,
    cuda: bool,
    precision: str = "bf16",
    attention: str | None = None,
    gradient_checkpointing: bool = False,
    fsdp: bool = False,
) -> torch.nn.Module:
    """The base, frozen where quantised; `attention` is the attn_implementation (None:
    transformers' default; api/finetune/attention.py chooses it on CUDA). `fsdp`: loaded for
    sharding (api/finetune/sharding.py): no device map (FSDP places the shards), and with
    bits 4 the quantised weights stored in the compute dtype."""
    kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": False}
    if attention is not None:
        kwargs["attn_implementation"] = attention
    if (config := quantisation(hf_dir)) is not None:  # GPTQ (the service refused the rest)
        gptq.enable()
        return kbit_ready(
            AutoModelForCausalLM.from_pretrained(
                hf_dir, **kwargs, **gptq.load_kwargs(cuda, config)
            ),
            gradient_checkpointing,
        )
    half = getattr(torch, torch_dtype_name(precision))
    if bits == 4:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=half,
            # FSDP flattens only same-dtype floating-point weights: the 4-bit weights are
            # stored in the dtype the rest is loaded in (bitsandbytes docs/source/fsdp_qlora.md)
            **({"bnb_4bit_quant_storage": half} if fsdp else {}),
        )
    elif bits == 8:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    # on the CPU the frozen base is bf16 only when training computes in bf16 (autocast)
    kwargs["dtype"] = half if cuda or precision == "bf16" else torch.float32
    if cuda and not fsdp:
        kwargs["device_map"] = {"": ranks.local_rank()}  # rank N trains on GPU N
    model = AutoModelForCausalLM.from_pretrained(hf_dir, **kwargs)
    # kbit_ready casts nothing, so it is safe under FSDP too (one FSDP unit holds one dtype)
    return kbit_ready(model, gradient_checkpointing) if bits < 16 else model


def kbit_ready(model: Any, gradient_checkpointing: bool) -> Any:
    """A quantised base (bitsandbytes or GPTQ) ready for LoRA: every base parameter frozen and,
    with gradient checkpointing, the embeddings' output requiring grad.

    Not PEFT's prepare_model_for_kbit_training, which also casts every fp16/bf16 parameter
    that is not 4-bit (embeddings, LM head, norms) to fp32: +0.8 GB on a 7B, for nothing the
    pinned libraries need. The matmuls run under autocast in the compute dtype whatever the
    weights' dtype (an fp32 LM head is cast back to bf16 at every step); RMSNorm computes in
    fp32 inside (Llama, Mistral, Qwen) and autocast runs layer_norm in fp32; the LoRA
    weights are PEFT's fp32, which TRL's SFT and DPO trainers cast to bf16 for a k-bit base
    (TRL 1.16 calls prepare_model_for_kbit_training only in its experimental ORPO/CPO
    trainers: preference_recipe.py hands ORPO the LoRA model, which skips it). transformers
    and TRL also make the inputs require grad when they enable checkpointing; doing it here
    keeps the model ready for whichever trainer takes it.
    """
    for param in model.parameters():
        param.requires_grad_(False)
    if gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    return model


def checkpointing_kwargs(enabled: bool) -> dict[str, Any] | None:
    """Non-reentrant checkpointing (torch's recommended mode: no inputs that must require
    grad, works with frozen bases and DDP). transformers 5.23 defaults to the same when given
    none, so on the CPU this only says explicitly what already ran."""
    return {"use_reentrant": False} if enabled else None


# ---------------------------------------------------------------- format
def read_rows(path: Path) -> list[list[dict[str, str]]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def to_prompt_completion(rows: list[list[dict[str, str]]], system: str | None) -> Dataset:
    """Everything before the last answer is the prompt: the loss covers the answer only."""
    records = []
    for messages in rows:
        if system and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system}, *messages]
        records.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return Dataset.from_list(records)


# ---------------------------------------------------------------- train
class ProgressEvents(TrainerCallback):
    """Step, loss, learning rate, tokens/s and ETA into the job store as they happen."""

    def __init__(self, store: JobStore, job_id: str):
        self.store, self.job_id = store, job_id
        # Start from what the submission recorded (the dataset summary): the evaluation before
        # training logs before on_train_begin runs.
        job = store.get(job_id)
        self.progress: dict[str, Any] = dict(job.progress) if job else {}
        self.started = self.last_time = time.monotonic()
        self.first_step = 0
        self.last_tokens: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.last_time = time.monotonic()
        self.first_step = state.global_step
        self.last_tokens = 0.0 if state.global_step == 0 else None
        job = self.store.get(self.job_id)
        self.progress = dict(job.progress) if job else {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:  # every rank logs; rank 0 reports
            return
        logs, now = logs or {}, time.monotonic()
        done = state.global_step - self.first_step
        rate = done / (now - self.started) if done > 0 else None
        update = {
            "step": state.global_step,
            "total_steps": state.max_steps,
            "epoch": round(state.epoch or 0.0, 4),
            "eta_seconds": round((state.max_steps - state.global_step) / rate, 1) if rate else None,
        }
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
            if key in logs:
                update[key] = logs[key]
        tokens = logs.get("num_tokens")  # TRL counts non-padding tokens
        if tokens is not None:
            if self.last_tokens is not None and now > self.last_time:
                update["tokens_per_second"] = round(
                    (tokens - self.last_tokens) / (now - self.last_time), 1
                )
            self.last_tokens, self.last_time = tokens, now
        update = {k: v for k, v in update.items() if v is not None}
        self.progress.update(update)
        self.store.set_progress(self.job_id, self.progress)
        if "loss" in logs or "eval_loss" in logs:  # not the end-of-training summary
            kind = "eval" if "eval_loss" in logs else "progress"
            self.store.add_event(self.job_id, kind, _describe(update), **update)

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.store.add_event(
            self.job_id,
            "checkpoint",
            f"Checkpoint saved at step {state.global_step}.",
            step=state.global_step,
        )


class AnswerLossTrainer(SFTTrainer):
    """SFTTrainer whose training step puts only the answer positions through the LM head.

    Off CUDA, TRL's fused LM head scores every position (prompt and all: a 49152-wide
    projection per token) and computes entropy and top-1 accuracy for its logs on every
    step. Nothing reads those here, and prompt logits do not enter the loss, so this step
    runs the backbone, projects the answer positions only (in chunks of CHUNK positions, each
    recomputed in the backward pass) and takes their mean cross-entropy: the same loss TRL
    computes. Evaluation, CUDA (where TRL scores only answer positions already) and several
    processes (DDP synchronises gradients through its wrapper's forward) use TRL's own path.
    """

    def compute_loss(
        self,
        model,
        inputs,
        return_outputs=False,
        num_items_in_batch=None,
    ):
        if (
            return_outputs
            or not model.training
            or self.args.device.type == "cuda"
            or self.args.world_size > 1
        ):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        lm = model.get_base_model() if isinstance(model, PeftModel) else model
        features = {k: v for k, v in inputs.items() if k != "labels"}
        hidden = getattr(lm, lm.base_model_prefix)(**features, use_cache=False).last_hidden_state
        labels = inputs["labels"][:, 1:]  # position t predicts token t + 1
        answer = labels != -100
        count = answer.sum() if num_items_in_batch is None else num_items_in_batch
        # chunked (api/finetune/answer_loss.py): memory stays flat with long answers
        loss = answer_loss_sum(lm.get_output_embeddings(), hidden[:, :-1][answer], labels[answer])
        # TRL's token count feeds the `num_tokens` log that ProgressEvents turns into tokens/s.
        fed = inputs["attention_mask"].sum() if "attention_mask" in inputs else labels.size(1) + 1
        self._total_train_tokens += int(fed)
        self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return loss / torch.as_tensor(count).clamp(min=1)


def _describe(p: dict[str, Any]) -> str:
    parts = [f"step {p.get('step')}/{p.get('total_steps')}"]
    for key in ("loss", "eval_loss", "learning_rate"):
        if key in p:
            parts.append(f"{key} {p[key]:.4g}")
    return ", ".join(parts)


def check_device(spec: FineTuneSpec, require_cuda: bool) -> tuple[FineTuneSpec, TrainingDevice]:
    """The spec fitted to the device this process sees, and that device. The API
    checked at submission, but the GPU may have gone since: refuse rather than fall back to
    the CPU when CUDA was required, or when bits or the optimizer need it."""
    found = TrainingDevice.of(inspect())
    if require_cuda and not found.cuda:
        raise RuntimeError(require_cuda_message(found))
    fitted, problems = fit(spec, found)
    if problems:
        raise RuntimeError("; ".join(problems))
    return fitted, found


def train(
    spec: FineTuneSpec,
    job_dir: Path,
    hf_dir: Path,
    store: JobStore,
    resume: bool,
    callbacks: list[TrainerCallback] | None = None,
    require_cuda: bool = False,
    parent: dict[str, Any] | None = None,
    step_process: bool = False,
) -> tuple[Trainer, PreTrainedTokenizerBase, dict[str, Any]]:
    """Train the LoRA adapter; `callbacks` are extra observers (the benchmark's meter).
    `step_process`: this is a job's own process, whose CPU threads yield to serving
    (api/jobs/cpu_priority.py); a caller's process (tests, benchmarks) is left as it is."""
    spec, device = check_device(spec, require_cuda)
    cuda = device.cuda
    cpu_priority = yield_cpu(on_gpu=cuda) if step_process else "normal: not a step process"
    assert spec.bits is not None and spec.optimizer is not None
    bits = spec.bits
    files = JobFiles(job_dir)
    torch.manual_seed(spec.seed)
    tokenizer = load_tokenizer(hf_dir)
    tokenizer.chat_template = template_for(spec.prompt_format, tokenizer.chat_template)
    attention, attention_reason = choose_attention(cuda, spec.mixed_precision, device.flash_attn)
    fsdp = ranks.sharded()
    if fsdp:  # the process group first: transformers loads CPU-RAM-efficiently only once it
        # exists (transformers/distributed/fsdp.py is_fsdp_enabled): rank 0 reads the weights
        from accelerate import PartialState

        PartialState()
    model = load_model(
        hf_dir, bits, cuda, spec.mixed_precision, attention, spec.gradient_checkpointing, fsdp
    )
    model, continued = with_parent(model, parent or {})  # training a fine-tuned model further
    train_rows = read_rows(files.data_file("train"))
    system = recipe_system_prompt(spec)
    validation = to_prompt_completion(read_rows(files.data_file("validation")), system)
    config = SFTConfig(
        output_dir=str(files.checkpoints),
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps,
        per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.gradient_accumulation_steps,
        gradient_checkpointing=spec.gradient_checkpointing,
        gradient_checkpointing_kwargs=checkpointing_kwargs(spec.gradient_checkpointing),
        use_liger_kernel=spec.liger_kernel,  # CUDA only: refused elsewhere (device.fit)
        learning_rate=spec.learning_rate,
        lr_scheduler_type=spec.lr_scheduler_type,
        warmup_steps=spec.warmup_ratio,  # below 1: a share of the total steps
        max_grad_norm=spec.max_grad_norm,
        weight_decay=spec.weight_decay,
        optim=spec.optimizer,
        bf16=spec.mixed_precision == "bf16",
        fp16=spec.mixed_precision == "fp16",  # the Trainer adds the loss scaler
        train_sampling_strategy="group_by_length" if spec.group_by_length else "random",
        use_cpu=not cuda,
        logging_steps=spec.logging_steps,
        eval_strategy="steps" if spec.eval_steps else "epoch",
        eval_steps=spec.eval_steps or None,
        save_strategy="steps",
        save_steps=spec.checkpoint_steps,
        save_total_limit=2,
        # Padding-free: each batch is one flat sequence whose position ids restart at every
        # example (the attention mask is built block-diagonal from them), so no pad token is
        # ever computed. Rows were checked against max_len when the job was submitted; TRL only
        # truncates when packing, where max_len is the packed length.
        padding_free=True,
        max_length=spec.max_len if spec.packing else None,
        packing=spec.packing,
        completion_only_loss=True,
        seed=spec.seed,
        data_seed=spec.seed,
        report_to="none",
        ddp_find_unused_parameters=False,  # LoRA: the frozen base has no gradients to wait for
        dataloader_num_workers=0,
        disable_tqdm=True,
        load_best_model_at_end=spec.select_best,  # the spec checked eval and save steps align
        metric_for_best_model="eval_loss" if spec.select_best else None,
        greater_is_better=False if spec.select_best else None,
    )
    lora = LoraConfig(
        r=spec.lora_r,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=gptq.targets(model, spec.target_modules),
        task_type="CAUSAL_LM",
    )
    trainer: Trainer
    if spec.method != "sft":  # dpo, orpo: api/finetune/preference_recipe.py
        validation = to_preference(read_rows(files.data_file("validation")), system)
        trainer = preference_trainer(
            spec,
            config,
            model,
            tokenizer,
            None if continued else lora,
            to_preference(train_rows, system),
            validation,
            [ProgressEvents(store, job_dir.name), *(callbacks or [])],
        )
    else:
        trainer = AnswerLossTrainer(
            model=model,  # type: ignore[arg-type]
            args=config,
            processing_class=tokenizer,
            peft_config=None if continued else lora,
            train_dataset=to_prompt_completion(train_rows, system),
            eval_dataset=validation,
            callbacks=[ProgressEvents(store, job_dir.name), *(callbacks or [])],
        )
    if resume:  # a save cut short by a kill has no trainer_state.json (written last): unusable
        for partial in files.checkpoint_dirs():
            if not (partial / "trainer_state.json").is_file():
                shutil.rmtree(partial, ignore_errors=True)
    has_checkpoint = resume and files.has_checkpoint()
    info: dict[str, Any] = {}
    if trainer.is_fsdp_enabled:
        # PEFT's wrap policy (the LoRA layers as units of their own, QLoRA's storage dtype in
        # the mixed-precision policy) before the first evaluate wraps the model; the Trainer
        # applies it only when training wraps first (transformers/trainer.py).
        from transformers.distributed.fsdp import update_fsdp_plugin_peft

        update_fsdp_plugin_peft(trainer.model, trainer.accelerator)
        info["sharding"] = "fsdp"
    # counted before FSDP wraps the model: its parameters are then this rank's shards
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)  # type: ignore[misc, union-attr]
    if len(validation) and not has_checkpoint:  # the starting point the result is judged against
        info["eval_loss_before"] = round(trainer.evaluate()["eval_loss"], 4)  # on every rank
    if "eval_loss_before" in info and ranks.is_main():
        store.add_event(
            job_dir.name,
            "eval",
            f"eval_loss {info['eval_loss_before']:.4g} before training",
            step=0,
            eval_loss=info["eval_loss_before"],
        )
    trainer.train(resume_from_checkpoint=True if has_checkpoint else None)
    info |= {
        "bits": bits,
        "optimizer": spec.optimizer,
        "mixed_precision": spec.mixed_precision,
        "device": "cuda" if cuda else "cpu",
        "attention": attention_reason,
        "cpu_priority": cpu_priority,
        "liger_kernel": spec.liger_kernel,
        "processes": trainer.args.world_size,
        "trainable_parameters": trainable,
    }
    return trainer, tokenizer, info


# ---------------------------------------------------------------- evaluate
def rouge_on_test(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[list[dict[str, str]]],
    spec: FineTuneSpec,
    predictions: list[dict[str, Any]] | None = None,
    sharded: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """ROUGE-1/2/L F1 of the tuned model's answers and the base's (adapter disabled); each
    row's outputs go into `predictions` when given. `sharded`: the FSDP-wrapped model, when
    `model` is its inner PEFT model; then every rank generates, in lockstep."""
    rows = rows[: spec.eval_rows]
    if not rows:
        return {}
    gather, synced = _generation_under_fsdp(sharded)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    model.eval()

    def answer(messages: list[dict[str, str]]) -> str:
        system = recipe_system_prompt(spec)
        if system and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system}, *messages]
        ids = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        ids = {k: v.to(model.device) for k, v in ids.items()}  # type: ignore[assignment, union-attr]
        with torch.no_grad(), gather():
            out = model.generate(  # type: ignore[arg-type]
                **ids,
                max_new_tokens=spec.eval_max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                **synced,
            )
        return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)  # type: ignore[call-overload, index, return-value, union-attr]

    def score(generate_base: bool) -> dict[str, float]:
        totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
        for i, messages in enumerate(rows):
            if generate_base:
                with model.disable_adapter():
                    text = answer(messages[:-1])
            else:
                text = answer(messages[:-1])
            result = scorer.score(messages[-1]["content"], text)
            for key in totals:
                totals[key] += result[key].fmeasure
            if predictions is not None:  # per-row outputs (api/finetune/predictions.py)
                record(predictions, i, messages, text, result["rougeL"].fmeasure, generate_base)
        return {k: round(v / len(rows), 4) for k, v in totals.items()}

    return {"test_rows": len(rows), "tuned": score(False), "base": score(True)}


def _generation_under_fsdp(sharded: torch.nn.Module | None) -> tuple[Any, dict[str, Any]]:
    """(context, generate() arguments) for generating with an FSDP1 model. Its root unit's
    weights (embeddings, final norm, LM head) are gathered for the whole generation, as
    TRL's trainers do (trl/distributed.py summon_full_params(recurse=False)); each decoder
    layer gathers its own in its forward, a collective, so every rank keeps stepping until
    all have finished (synced_gpus)."""
    if sharded is None:
        return contextlib.nullcontext, {}
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    return (
        lambda: FSDP.summon_full_params(sharded, recurse=False, writeback=False),
        {"synced_gpus": True},
    )


# ---------------------------------------------------------------- main
def run(job_dir: Path, store: JobStore, resume: bool) -> None:
    """The training step: train, evaluate, save the adapter and the metrics."""
    files = JobFiles(job_dir)
    job_id = job_dir.name
    spec = FineTuneSpec(**json.loads(files.spec.read_text()))
    run_info = json.loads(files.run.read_text())
    trainer, tokenizer, info = train(
        spec,
        job_dir,
        Path(run_info["hf_dir"]),
        store,
        resume,
        require_cuda=run_info.get("require_cuda", False),
        parent=run_info,
        step_process=True,
    )

    if ranks.is_main():
        store.add_event(job_id, "evaluating", "Evaluating on the validation and test rows.")
    metrics: dict[str, Any] = dict(info)
    if trainer.eval_dataset is not None and len(trainer.eval_dataset):  # type: ignore[arg-type]
        eval_loss = trainer.evaluate()["eval_loss"]  # every rank takes part
        metrics.update(eval_loss=round(eval_loss, 4), perplexity=round(math.exp(eval_loss), 3))
    test_rows = read_rows(files.data_file("test"))
    predictions: list[dict[str, Any]] = []
    rouge: dict[str, Any] = {}
    if trainer.is_fsdp_enabled:  # the shards: every rank generates and saves, with rank 0
        rouge = _finish_sharded(trainer, tokenizer, spec, test_rows, files.adapter, predictions)
    if not ranks.is_main():  # the rest (generation, files, metrics) is rank 0's alone
        return
    history = [h for h in trainer.state.log_history if "loss" in h]
    metrics["train_loss_first"] = history[0]["loss"] if history else None
    metrics["train_loss_last"] = history[-1]["loss"] if history else None
    metrics["steps"] = trainer.state.global_step
    if spec.select_best:
        metrics["best_checkpoint"] = trainer.state.best_model_checkpoint
    if spec.method != "sft":
        metrics["method"] = spec.method
        metrics["preference"] = preference_metrics(trainer.state.log_history)
    if not trainer.is_fsdp_enabled:
        rouge = rouge_on_test(trainer.model, tokenizer, test_rows, spec, predictions)  # type: ignore[arg-type]
        trainer.model.save_pretrained(files.adapter, safe_serialization=True)  # type: ignore[operator, union-attr]
        tokenizer.save_pretrained(files.adapter)
    metrics["rouge"] = rouge
    if predictions:  # none when eval_rows is 0
        write_predictions(files.predictions, predictions)
    files.metrics.write_text(json.dumps(metrics, indent=2))
    store.set_metrics(job_id, metrics)


def _finish_sharded(
    trainer: Trainer,
    tokenizer: PreTrainedTokenizerBase,
    spec: FineTuneSpec,
    test_rows: list[list[dict[str, str]]],
    adapter: Path,
    predictions: list[dict[str, Any]],
) -> dict[str, Any]:
    """On every rank of an FSDP job: the ROUGE generation, then the adapter.
    `Trainer.save_model` gathers the full state dict on rank 0 (FULL_STATE_DICT) and rank 0
    writes the PEFT adapter from it, as save_pretrained does after DDP (and training_args.bin,
    removed: the adapter directory holds the adapter and the tokenizer only)."""
    rouge = rouge_on_test(
        trainer.accelerator.unwrap_model(trainer.model),
        tokenizer,
        test_rows,
        spec,
        predictions,
        sharded=trainer.model,
    )
    trainer.save_model(str(adapter))  # a collective: every rank
    if ranks.is_main():
        (adapter / "training_args.bin").unlink(missing_ok=True)
    return rouge


if __name__ == "__main__":
    sys.exit(step.main(run, description="Run one fine-tuning job."))
