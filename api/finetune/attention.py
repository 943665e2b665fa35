"""Which attention implementation a training job uses on CUDA, and why (recorded like the dtype).

The recipe trains padding-free: a batch is one flat sequence whose position ids restart at every
example, and TRL's collator also passes the sequence boundaries (`cu_seq_lens_q/k`). What each
implementation of the pinned transformers (5.23) does with such a batch:

- `flash_attention_2` (the flash-attn package; Ampere or newer; fp16/bf16 only): its varlen
  kernel over those boundaries. Each example attends within itself; nothing is masked or
  computed across examples.
- `sdpa`: transformers' masking_utils finds the packed examples from the position ids and
  materialises a block-diagonal boolean mask over the whole batch (tokens x tokens); torch's
  SDPA then runs a masked kernel over all of it (no flash kernel with an explicit mask). Right,
  but the attention across examples is computed and thrown away: a few percent of a 7B step at
  ~6k tokens, more as batches grow.
- `flex_attention`: a BlockMask skips the fully masked blocks (close to varlen work), but
  transformers runs it through torch.compile, and padding-free batches change length every
  step (recompilation). Not chosen: it has not been run on a GPU here.

So on CUDA: flash_attention_2 when the device probe found flash-attn usable and the job
computes in fp16/bf16, else sdpa. On the CPU the recipe passes nothing, as before: transformers'
default (sdpa) with the block-diagonal mask.
"""

FLASH = "flash_attention_2"


def choose_attention(cuda: bool, precision: str, flash_attn: str | None) -> tuple[str | None, str]:
    """(the `attn_implementation` to load the model with, None for transformers' default; why).

    `flash_attn` is the usable flash-attn version the probe found (None: not installed, or not
    usable on this GPU), `precision` the resolved mixed_precision."""
    if not cuda:
        return None, (
            "sdpa: transformers' default on the CPU (packed batches get a block-diagonal "
            "mask built from the position ids)"
        )
    masked = "packed batches get a block-diagonal mask, attention computed over the whole batch"
    if flash_attn is None:
        return "sdpa", f"sdpa: flash-attn is not installed or not usable on this GPU; {masked}"
    if precision not in ("bf16", "fp16"):
        return "sdpa", f"sdpa: flash-attn needs fp16/bf16 and this job computes in fp32; {masked}"
    return FLASH, (
        f"{FLASH}: flash-attn {flash_attn}; packed batches use its varlen kernel (each example "
        "attends within itself, no mask)"
    )
