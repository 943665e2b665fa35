"""The answer-only loss, chunked: the LM head and cross-entropy over at most `chunk` answer
positions at a time, each chunk recomputed in the backward pass instead of kept.

Unchunked, the logits of every answer position stay alive for the backward pass: answer
tokens x vocabulary x 4 bytes (1.4 GB at 2,400 answer tokens of a 49,152-word vocabulary in
fp32, 3.8 GB at 6,400). Chunked with activation checkpointing, only one chunk's logits exist at
a time, so memory stays flat however long the answers are; the sum is the same.
"""

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

CHUNK = 1024  # answer positions per chunk: ~200 MB of fp32 logits at a 49k vocabulary


def _chunk_loss(head: Any, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = head(hidden).float()
    return torch.nn.functional.cross_entropy(logits, labels, reduction="sum")


def answer_loss_sum(
    head: Any, hidden: torch.Tensor, labels: torch.Tensor, chunk: int = CHUNK
) -> torch.Tensor:
    """Summed cross-entropy of `head(hidden)` against `labels` (answer positions only, flat:
    hidden [n, d], labels [n]); chunked when n > chunk and gradients are needed."""
    n = labels.numel()
    if n <= chunk or not torch.is_grad_enabled():
        return _chunk_loss(head, hidden, labels)
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, n, chunk):
        end = min(start + chunk, n)
        total = total + checkpoint(
            _chunk_loss, head, hidden[start:end], labels[start:end], use_reentrant=False
        )
    return total
