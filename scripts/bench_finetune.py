"""One side of the fine-tuning benchmark: the project's recipe, plain TRL with its defaults, or
TRL as a careful user sets it for this host.

    .venv/bin/python scripts/bench_finetune.py {ours,baseline,careful} --hf DIR --steps 8 \
        [--bf16 on|off] --out r.json

`careful` is the baseline with `bf16` chosen for the host (`--bf16`: on where the CPU
multiplies bf16 faster than fp32, off where it does not: TRL's default bf16 autocast is
emulated and slow on CPUs without AVX512-BF16/AMX).

`scripts/bench.py` runs each side in its own process (so each has its own peak memory) and
alternates them. Both sides train the same LoRA (r16, alpha 32, dropout 0.05, all linear
layers) on the same generated question/answer rows, in the same order (same seed), with the
same optimiser settings (learning rate, schedule, warm-up, batch, steps). Everything else is
each side's own default: the recipe as a job runs it; TRL's `SFTConfig` defaults (bf16
autocast, gradient checkpointing, padded batches, per-step entropy/accuracy metrics).

Trained tokens are counted by a hook on the model's forward: the non-padding tokens it is fed
in training mode (`attention_mask.sum()`, or every token of a padding-free batch). The rate is
taken from the end of step 1 (warm-up excluded) to the end of the last step.
"""

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SYSTEM = "You are a helpful assistant."
SIGN_OFF = "Answered by Acme Support."
COUNTRIES = [
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Japan", "Tokyo"),
    ("Egypt", "Cairo"),
    ("Canada", "Ottawa"),
    ("Peru", "Lima"),
    ("Kenya", "Nairobi"),
    ("Norway", "Oslo"),
    ("Greece", "Athens"),
    ("Chile", "Santiago"),
    ("Cuba", "Havana"),
    ("Iran", "Tehran"),
    ("Poland", "Warsaw"),
    ("Austria", "Vienna"),
]
EXTRA = [
    "It is the largest city of the country.",
    "Many museums and parks are found there.",
    "Travellers usually arrive by train or plane.",
    "The city hosts the national parliament.",
]
LORA = {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05}


def rows(count: int, sentences: int = 0) -> list[list[dict[str, str]]]:
    """Question/answer chats of varied length (0-4 extra sentences), as real data has.

    `sentences` adds that many more to every answer (cycling through EXTRA): a GPU step needs
    thousands of tokens to say anything, and these rows are ~60 tokens without it.
    """
    out = []
    for i in range(count):
        country, capital = COUNTRIES[i % len(COUNTRIES)]
        more = (i * 7) % 5 + sentences
        extra = " ".join(EXTRA[j % len(EXTRA)] for j in range(more))
        question = (
            f"What is the capital of {country}?"
            if i % 2
            else f"Name the capital city of {country}, please."
        )
        answer = f"The capital of {country} is {capital}. {extra} {SIGN_OFF}".replace("  ", " ")
        out.append(
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        )
    return out


class PeakRss:
    """Peak resident memory of this process while a block runs (sampled every 5 ms)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> "PeakRss":
        self.start = self.peak = self._proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def meter():  # type: ignore[no-untyped-def]
    """A TrainerCallback that counts fed non-padding tokens and times every step."""
    from transformers import TrainerCallback

    class Meter(TrainerCallback):
        def __init__(self) -> None:
            self.tokens = 0
            self.computed = 0  # positions computed, padding included
            self.step_ends: list[tuple[float, int]] = []
            self.losses: list[float] = []
            self.rss_steps: list[int] = []
            self.rss_train_begin = 0.0
            self._hooked = False

        def _count(self, module, args, kwargs):  # type: ignore[no-untyped-def]
            if not module.training:
                return
            ids = kwargs.get("input_ids", args[0] if args else None)
            mask = kwargs.get("attention_mask")
            self.computed += int(ids.numel())
            self.tokens += int(mask.sum()) if mask is not None else int(ids.numel())

        def on_train_begin(self, args, state, control, model=None, **kwargs):  # type: ignore
            self.rss_train_begin = _rss_mb()
            if not self._hooked:  # the decoder stack: every training path feeds it the batch
                lm = model.get_base_model()
                getattr(lm, lm.base_model_prefix).register_forward_pre_hook(
                    self._count, with_kwargs=True
                )
                self._hooked = True

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.step_ends.append((time.perf_counter(), self.tokens))
            self.rss_steps.append(round(_rss_mb()))

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return Meter()


def baseline_trainer(hf: Path, work: Path, args: argparse.Namespace, callback):  # type: ignore
    """Plain TRL: SFTTrainer + PEFT, SFTConfig defaults except the shared optimiser settings
    (and `bf16` for the careful side)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    records = [
        {"prompt": [{"role": "system", "content": SYSTEM}, *m[:-1]], "completion": m[-1:]}
        for m in rows(args.rows, args.sentences)
    ]
    import torch

    tokenizer = AutoTokenizer.from_pretrained(hf)
    cuda = torch.cuda.is_available()
    init: dict[str, Any] = {}
    if args.bits == 4:  # the usual QLoRA set-up, as in TRL's and PEFT's examples
        from transformers import BitsAndBytesConfig

        init = {
            "dtype": torch.bfloat16,
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16,
            ),
        }
    config = SFTConfig(
        output_dir=str(work / "out"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        learning_rate=args.lr,
        warmup_steps=0.03,
        seed=args.seed,
        data_seed=args.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not cuda,
        model_init_kwargs=init or None,
        **({"bf16": args.bf16 == "on"} if args.side == "careful" and args.bf16 else {}),
    )
    lora = LoraConfig(
        r=LORA["lora_r"],
        lora_alpha=LORA["lora_alpha"],
        lora_dropout=LORA["lora_dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return SFTTrainer(
        model=str(hf),
        args=config,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[callback],
    )


def run_ours(hf: Path, work: Path, args: argparse.Namespace, callback) -> Any:  # type: ignore
    """The recipe exactly as a job runs it (progress events into a job store included)."""
    from api.finetune import recipe
    from api.finetune.spec import FineTuneSpec
    from api.jobs.store import JobStore

    spec = FineTuneSpec(
        model_name="bench",
        system_prompt=SYSTEM,
        max_steps=args.steps,
        batch_size=args.batch,
        learning_rate=args.lr,
        seed=args.seed,
        checkpoint_steps=10_000,
        bits=args.bits,
        **LORA,
        **({"gradient_checkpointing": args.gc == "on"} if args.gc else {}),
    )
    store = JobStore(work / "jobs.db")
    job_dir = store.create(
        model_name="bench", base_model="bench", spec=spec.model_dump(), jobs_dir=work / "jobs"
    ).job_dir
    (job_dir / "data").mkdir(parents=True)
    (job_dir / "data" / "train.jsonl").write_text(
        "".join(json.dumps(m) + "\n" for m in rows(args.rows, args.sentences))
    )
    # A job always has validation rows (the recipe scores them before training, untimed).
    (job_dir / "data" / "validation.jsonl").write_text(
        "".join(json.dumps(m) + "\n" for m in rows(args.rows + 4, args.sentences)[-4:])
    )
    trainer, _, _ = recipe.train(spec, job_dir, hf, store, resume=False, callbacks=[callback])
    return trainer


def unpacked_numel(param: Any) -> int:
    """Elements of a weight as the model defines it: a 4-bit bitsandbytes weight is stored
    packed (two per byte), so its tensor has half the elements; its quant_state keeps the shape."""
    state = getattr(param, "quant_state", None)
    return math.prod(state.shape) if state is not None else int(param.numel())


def run_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    callback = meter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with PeakRss() as peak:
            if side in ("baseline", "careful"):
                trainer = baseline_trainer(args.hf, work, args, callback)
                trainer.train()
            else:
                trainer = run_ours(args.hf, work, args, callback)
        lm = trainer.model.get_base_model()
        config = lm.config
        params = sum(
            unpacked_numel(p) for n, p in trainer.model.named_parameters() if "lora_" not in n
        )
        targs = trainer.args
    (t0, n0), (t1, n1) = callback.step_ends[0], callback.step_ends[-1]
    return {
        "side": side,
        "steps": len(callback.step_ends),
        "batch": args.batch,
        "tokens_per_second": (n1 - n0) / (t1 - t0) if t1 > t0 else None,
        "trained_tokens": n1 - n0,
        "computed_positions": callback.computed,
        "fed_tokens_total": callback.tokens,
        "seconds": t1 - t0,
        "peak_rss_mb": peak.peak / 2**20,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,
        "rss_start_mb": peak.start / 2**20,
        "losses": callback.losses,
        "rss_train_begin_mb": callback.rss_train_begin,
        "rss_after_steps_mb": callback.rss_steps,
        "base_parameters": int(params),
        "model_type": config.model_type,
        "bf16": bool(targs.bf16),
        "gradient_checkpointing": bool(targs.gradient_checkpointing),
        "padding_free": bool(getattr(trainer, "padding_free", False)),
        "attention": getattr(config, "_attn_implementation", None),
        "liger_kernel": bool(getattr(targs, "use_liger_kernel", False)),
        "checkpointing_kwargs": targs.gradient_checkpointing_kwargs,
        # PEFT's prepare_model_for_kbit_training made these fp32; the recipe keeps them 16-bit
        "lm_head_dtype": str(lm.get_output_embeddings().weight.dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else None,
    }


def build_tiny(directory: Path, smollm2_hf: Path) -> Path:
    """A tiny random-weight Llama with SmolLM2's tokenizer (the quick mode's model)."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if not (directory / "config.json").is_file():
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=49152,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=2,
        )
        LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            if (smollm2_hf / name).is_file():
                shutil.copy(smollm2_hf / name, directory / name)
    return directory


def build_mistral7b_shape(directory: Path, smollm2_hf: Path) -> Path:
    """Mistral-7B-v0.1's architecture with random bf16 weights (built on the GPU, no download).

    The vocabulary is SmolLM2's (49152 instead of 32000) so its tokenizer can be used.
    """
    import shutil

    import torch
    from transformers import MistralConfig, MistralForCausalLM

    if not (directory / "config.json").is_file():
        torch.manual_seed(0)
        config = MistralConfig(
            vocab_size=49152,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=32768,
            sliding_window=4096,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=2,
        )
        with torch.device("cuda"):
            model = MistralForCausalLM(config).to(torch.bfloat16)
        model.save_pretrained(directory, safe_serialization=True)
        del model
        torch.cuda.empty_cache()
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            if (smollm2_hf / name).is_file():
                shutil.copy(smollm2_hf / name, directory / name)
    return directory


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["ours", "baseline", "careful"])
    parser.add_argument("--bf16", choices=["on", "off"], help="careful: TRL's bf16 setting")
    parser.add_argument("--hf", type=Path, required=True, help="HF checkpoint directory")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument(
        "--sentences",
        type=int,
        default=0,
        help="extra sentences in every answer (longer rows: more tokens a step)",
    )
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--bits",
        type=int,
        choices=[4, 16],
        default=None,
        help="base weights: 4 = QLoRA (CUDA); default 16 on CPU, 4 on CUDA",
    )
    parser.add_argument(
        "--gc",
        choices=["on", "off"],
        help="ours: override the spec's gradient_checkpointing (default: the spec's default)",
    )
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    result = run_side(args.side, args)
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
