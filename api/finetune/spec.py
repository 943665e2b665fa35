"""The fine-tuning job spec: every field typed, bounded and documented, validated before work.

The resolved spec (defaults filled in, the seed actually used) is saved as spec.json next
to the job's outputs.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.finetune.formats import PromptFormat, SystemRole
from api.finetune.quant_types import QUANTIZATIONS, Quantization
from api.finetune.training_options import TrainingOptions
from api.names import ModelName

ExportMode = Literal["merged", "adapter", "none"]
# Names as transformers' TrainingArguments(optim=...) spells them. The paged ones are
# bitsandbytes optimizers whose state pages between GPU and CPU memory through CUDA unified
# memory: CUDA only.
Optimizer = Literal[
    "adamw_torch",
    "adamw_torch_fused",
    "paged_adamw_32bit",
    "paged_adamw_8bit",
    "adamw_8bit",
    "adafactor",
]
PAGED_OPTIMIZERS = ("paged_adamw_32bit", "paged_adamw_8bit")
BNB_OPTIMIZERS = (*PAGED_OPTIMIZERS, "adamw_8bit")  # bitsandbytes: CUDA only
MixedPrecision = Literal["auto", "bf16", "fp16", "fp32"]
Sharding = Literal["ddp", "fsdp"]
Method = Literal["sft", "dpo", "orpo"]
MAX_PROCESSES = 64  # `gpus`: an upper bound on the field; the host's own is checked at submission


class ExportSpec(BaseModel):
    """How a trained adapter becomes a served model."""

    model_config = ConfigDict(extra="forbid")

    export: ExportMode = Field(
        "merged",
        description="`merged`: merge the LoRA into the 16-bit base and convert to GGUF; "
        "`adapter`: convert the LoRA alone to a GGUF adapter served on the "
        "base GGUF; `none`: keep the trained adapter only.",
    )
    quantization: list[Quantization] = Field(
        default_factory=lambda: ["Q4_K_M"],  # type: ignore[arg-type]
        min_length=1,
        max_length=len(QUANTIZATIONS),
        description="GGUF types written for `merged` (any of "
        + ", ".join(QUANTIZATIONS)
        + "); the first one is served.",
    )


class ExportRequest(BaseModel):
    """POST /jobs/{id}/export: unset fields keep the original job's values."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model_name: ModelName | None = Field(
        None, description="Name to register the exported model under."
    )
    export: Literal["merged", "adapter"] | None = Field(None, description="Export mode.")
    quantization: list[Quantization] | None = Field(
        None,
        min_length=1,
        max_length=len(QUANTIZATIONS),
        description="GGUF types for `merged`.",
    )
    checkpoint: int | None = Field(
        None,
        ge=1,
        strict=False,  # JSON's 2.0 is an integer too (JSON Schema); 2.5 is still refused
        description="Export this step's checkpoint (GET /jobs/{id}/checkpoints) instead of "
        "the job's final adapter.",
    )


class FineTuneSpec(ExportSpec, TrainingOptions):
    model_name: ModelName = Field(
        ..., description="Name of the fine-tuned model this job produces."
    )
    base_model: ModelName = Field(
        "smollm2-135m", description="Base model to train on (see GET /listModels)."
    )
    system_prompt: str | None = Field(
        None,
        max_length=8000,
        description="System prompt added to examples that have none, and used by the result.",
    )
    question_key: str = Field(
        "input",
        min_length=1,
        max_length=64,
        description="Column or key holding the question (CSV, JSON).",
    )
    answer_key: str = Field(
        "output",
        min_length=1,
        max_length=64,
        description="Column or key holding the answer (CSV, JSON).",
    )
    train_size: float = Field(
        0.8,
        gt=0.0,
        lt=1.0,
        description="Share of rows used for training when no eval_file is "
        "given; the rest is halved into validation and test.",
    )
    seed: int = Field(
        42,
        ge=-1,
        le=2**31 - 1,
        description="Seed for the split and training; -1 picks one at random.",
    )
    epochs: float = Field(3.0, gt=0.0, le=100.0, description="Passes over the training data.")
    max_steps: int = Field(
        -1, ge=-1, le=1_000_000, description="Optimizer steps to run; overrides epochs when > 0."
    )
    learning_rate: float = Field(2e-4, gt=0.0, le=1.0, description="Peak learning rate.")
    batch_size: int = Field(4, ge=1, le=512, description="Examples per device per step.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=1024, description="Steps to accumulate before an update."
    )
    gpus: int = Field(
        1,
        ge=1,
        le=MAX_PROCESSES,
        title="GPUs",
        description="Training processes: above 1, the job trains on this many GPUs at once "
        "(DDP under `accelerate launch`; each GPU holds a whole copy of the model, and "
        "batch_size is per GPU, so one step sees gpus x batch_size x "
        "gradient_accumulation_steps examples). On a host without a GPU, this many CPU "
        "processes (gloo), at most one per core: for testing and development. Refused "
        "with 422 above what the host offers (docs/fine-tuning.md#several-gpus-gpus).",
    )
    sharding: Sharding = Field(
        "ddp",
        description="How `gpus` above 1 share the work. `ddp`: every GPU holds the whole "
        "base (the base must fit one GPU). `fsdp`: PyTorch FSDP (FULL_SHARD) splits the "
        "base, gradients and optimizer state across the GPUs, for a base that does not fit "
        "one GPU (with bits 4: FSDP-QLoRA). `fsdp` needs CUDA GPUs, gpus of 2 or more, bits "
        "4 or 16, method sft and a 16-bit base checkpoint; other combinations are refused "
        "with 422 (docs/fine-tuning.md#sharding-the-base-sharding-fsdp).",
    )
    gradient_checkpointing: bool = Field(
        True,
        description="Recompute activations in the backward pass: far less memory for "
        "about a third more compute (SmolLM2 on CPU: 0.68x the peak memory, "
        "0.6x the speed; docs/benchmarks.md). Turn off when memory is ample.",
    )
    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, le=4096, description="LoRA scaling (alpha / r).")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on LoRA inputs.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Modules that get LoRA adapters, or `all-linear`."
    )
    bits: int | None = Field(
        None,
        description="Base weight precision: 4 = QLoRA NF4, 8 = int8 (both need CUDA), "
        "16 = plain LoRA. Default: 4 on CUDA, 16 on CPU.",
    )
    optimizer: Optimizer | None = Field(
        None,
        description="`adamw_torch` (PyTorch AdamW, fp32 state), `adamw_torch_fused` "
        "(the same, fused kernels), `paged_adamw_32bit` / `paged_adamw_8bit` "
        "(bitsandbytes AdamW whose state pages to CPU memory when the GPU "
        "runs short; 8-bit state is 4x smaller; CUDA only), `adamw_8bit` (bitsandbytes "
        "8-bit AdamW, not paged; CUDA only), `adafactor` (factored second moments: less "
        "optimizer memory). Default: "
        "paged_adamw_8bit with bits 4 or 8 (with sharding ddp), adamw_torch otherwise.",
    )
    packing: bool = Field(False, description="Pack several examples into one sequence.")
    max_len: int = Field(
        512,
        ge=16,
        le=32768,
        description="Longest formatted example in tokens; longer rows are reported, not truncated.",
    )
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Share of steps for warm-up.")
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate schedule."
    )
    max_grad_norm: float = Field(1.0, gt=0.0, le=100.0, description="Gradient clipping norm.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="AdamW weight decay.")
    eval_steps: int = Field(
        0, ge=0, le=1_000_000, description="Evaluate every N steps; 0 evaluates once per epoch."
    )
    checkpoint_steps: int = Field(
        50, ge=1, le=1_000_000, description="Save a resumable checkpoint every N steps."
    )
    logging_steps: int = Field(1, ge=1, le=10_000, description="Report progress every N steps.")
    eval_max_new_tokens: int = Field(
        64, ge=1, le=2048, description="Tokens generated per test row for the ROUGE evaluation."
    )
    eval_rows: int = Field(
        32, ge=0, le=10_000, description="Most test rows scored with ROUGE (0 skips it)."
    )

    # -- formats, optimisation and preference tuning (docs/fine-tuning.md, issue #17)
    prompt_format: PromptFormat = Field(
        "chat",
        description="`chat`: the base's chat template; `alpaca`: the Alpaca prompt (with "
        "and without input); `raw`: the texts without markup, the answer ended by EOS.",
    )
    system_role: SystemRole = Field(
        "auto",
        description="`native`: system messages as the template has them; `merge`: the system "
        "text folded into the first user turn (templates without a system role); `auto`: "
        "`merge` when the template rejects or drops a system message (resolved at submission).",
    )
    truncate: bool = Field(
        False,
        description="Cut rows longer than max_len (the longest question turn first, the "
        "answer only when that is not enough) instead of rejecting them; the count is "
        "reported.",
    )
    test_size: int | float | None = Field(
        None,
        description="Hold-out test rows without an eval_file: a row count (>= 1) or a "
        "fraction (0-1); validation gets the rest after train_size. Default: half the rest.",
    )
    group_by_length: bool = Field(
        False, description="Batch examples of similar length together (less padding)."
    )
    mixed_precision: MixedPrecision = Field(
        "auto",
        description="`auto`: bf16 on GPUs that have it, fp16 with loss scaling on GPUs that "
        "do not, fp32 on the CPU; `bf16`, `fp16` (CUDA only) or `fp32` to choose.",
    )
    liger_kernel: bool = Field(
        False,
        description="Liger's Triton kernels (RMSNorm, RoPE, SwiGLU) in place of the model's "
        "own, through TRL's `use_liger_kernel`: less activation memory on a GPU. CUDA only, "
        "with the liger-kernel package (pyproject.toml's `gpu` extra); `sft` and `dpo`. "
        "Refused with 422 elsewhere.",
    )
    method: Method = Field(
        "sft",
        description="`sft`: supervised on question/answer rows; `dpo` or `orpo`: preference "
        "tuning on prompt/chosen/rejected rows (TRL's DPOTrainer / ORPOTrainer, with LoRA).",
    )
    beta: float = Field(
        0.1,
        gt=0.0,
        le=10.0,
        description="`dpo`: the KL penalty's strength; `orpo`: the odds-ratio loss weight.",
    )

    @field_validator("test_size")
    @classmethod
    def _test_size_count_or_fraction(cls, size: int | float | None) -> int | float | None:
        if size is None or (isinstance(size, int) and size >= 1) or 0.0 < size < 1.0:
            return size
        raise ValueError("test_size must be a row count (an integer >= 1) or a fraction in (0, 1)")

    @field_validator("bits")
    @classmethod
    def _bits_supported(cls, bits: int | None) -> int | None:
        if bits not in (None, 4, 8, 16):
            raise ValueError("bits must be 4 (QLoRA), 8 or 16")
        return bits

    @model_validator(mode="after")
    def _liger_not_for_orpo(self) -> "FineTuneSpec":
        if self.liger_kernel and self.method == "orpo":
            raise ValueError(
                "liger_kernel applies to methods sft and dpo: TRL's (experimental) ORPO "
                "trainer leaves Liger's fused cross-entropy on, which replaces the forward "
                "whose logits ORPO's loss reads; leave it false with orpo"
            )
        return self

    @model_validator(mode="after")
    def _target_modules_are_names(self) -> "FineTuneSpec":
        if isinstance(self.target_modules, list) and (
            not self.target_modules or not all(m.isidentifier() for m in self.target_modules)
        ):
            raise ValueError(
                "target_modules must be `all-linear` or a non-empty list of module "
                "names such as q_proj"
            )
        return self
