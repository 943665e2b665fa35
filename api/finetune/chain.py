"""Load a model's adapter chain onto its base (api/finetune/lineage.py says which): the
adapters merged in order, and optionally one left as a trainable adapter. A quantised (GPTQ)
base cannot take a merge: there a model's one adapter stays a LoRA layer beside the quantised
weights (the service refuses chains of more on such a base). Imports torch."""

from pathlib import Path
from typing import Any

import torch
from peft import PeftModel


def merge_adapters(model: torch.nn.Module, adapters: list[str]) -> torch.nn.Module:
    """Each adapter merged into the weights, in order (the model a parent was served as)."""
    for adapter in adapters:
        peft: Any = PeftModel.from_pretrained(model, Path(adapter))
        model = peft.merge_and_unload()
    return model


def apply_adapters(model: torch.nn.Module, adapters: list[str], quantised: bool) -> torch.nn.Module:
    """The model with `adapters` applied for inference: merged in order, or on a quantised
    base the one adapter unmerged (the same outputs: W x + scale * B A x)."""
    if not quantised:
        return merge_adapters(model, adapters)
    if len(adapters) > 1:
        raise ValueError(
            f"{len(adapters)} adapters on a quantised base: only one can be applied unmerged."
        )
    return PeftModel.from_pretrained(model, Path(adapters[0])) if adapters else model


def with_parent(model: torch.nn.Module, run: dict[str, Any]) -> tuple[torch.nn.Module, bool]:
    """The base with run.json's parent applied; True when the parent's adapter is the one
    to train on (continue_adapter), so no new LoRA is added."""
    model = merge_adapters(model, run.get("merge_adapters", []))
    if run.get("continue_adapter"):
        adapter = Path(run["continue_adapter"])
        trainable = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        return trainable, True
    return model, False
