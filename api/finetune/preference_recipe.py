"""Preference tuning (method `dpo` or `orpo`) inside the recipe: TRL's DPOTrainer or
ORPOTrainer with the same LoRA, arguments, callbacks and checkpoints as SFT.

DPO's reference model is the base itself (TRL disables the adapter to score it), so no second
copy is loaded. ORPO needs no reference: it adds an odds-ratio term to the chosen answer's
NLL. Both log `rewards/chosen`, `rewards/rejected`, `rewards/margins` and
`rewards/accuracies` (the share of pairs whose chosen answer is preferred), which end up in the
job's metrics under `preference`.
"""

from typing import Any

from datasets import Dataset
from peft import LoraConfig
from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments

# TrainingArguments the recipe sets for SFT, carried over to DPOConfig / ORPOConfig.
_COMMON = (
    "output_dir",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "gradient_checkpointing",
    "gradient_checkpointing_kwargs",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "max_grad_norm",
    "weight_decay",
    "optim",
    "bf16",
    "fp16",
    "use_cpu",
    "logging_steps",
    "eval_strategy",
    "eval_steps",
    "save_strategy",
    "save_steps",
    "save_total_limit",
    "seed",
    "data_seed",
    "dataloader_num_workers",
    "ddp_find_unused_parameters",
    "disable_tqdm",
    "train_sampling_strategy",
    "use_liger_kernel",  # the spec refuses it with orpo
)
METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


def to_preference(rows: list[list[dict[str, Any]]], system: str | None) -> Dataset:
    """Conversational prompt / chosen / rejected records, as TRL's trainers take them."""
    records = []
    for messages in rows:
        if system and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system}, *messages]
        answer = messages[-1]
        records.append(
            {
                "prompt": [{"role": m["role"], "content": m["content"]} for m in messages[:-1]],
                "chosen": [{"role": "assistant", "content": answer["content"]}],
                "rejected": [{"role": "assistant", "content": answer.get("rejected", "")}],
            }
        )
    return Dataset.from_list(records)


def preference_trainer(
    spec: Any,
    sft_args: TrainingArguments,
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    lora: LoraConfig | None,
    train: Dataset,
    validation: Dataset,
    callbacks: list[TrainerCallback],
) -> Trainer:
    common = {name: getattr(sft_args, name) for name in _COMMON}
    common["report_to"] = "none"
    if spec.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer(
            model=model,
            args=DPOConfig(**common, beta=spec.beta, max_length=spec.max_len),
            train_dataset=train,
            eval_dataset=validation,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=callbacks,
        )
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    if lora is not None and (
        getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    ):
        # Given a k-bit base and a peft_config, ORPOTrainer runs PEFT's
        # prepare_model_for_kbit_training, which casts the embeddings, LM head and norms to
        # fp32 (recipe.kbit_ready says why they stay in the compute dtype); given the LoRA
        # model, it does not.
        from peft import get_peft_model

        model, lora = get_peft_model(model, lora), None

    return ORPOTrainer(
        model=model,
        args=ORPOConfig(**common, beta=spec.beta, max_length=spec.max_len),
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=callbacks,
    )


def preference_metrics(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """The last training and evaluation reward figures."""
    found: dict[str, Any] = {}
    for entry in log_history:
        for key in METRICS:
            for name in (key, f"eval_{key}"):
                if name in entry:
                    found[name] = round(float(entry[name]), 4)
    return found
