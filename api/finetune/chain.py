"""Load a model's adapter chain onto its base (api/finetune/lineage.py says which): the
adapters merged in order, and optionally one left as a trainable adapter. Imports torch."""

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


def with_parent(model: torch.nn.Module, run: dict[str, Any]) -> tuple[torch.nn.Module, bool]:
    """The base with run.json's parent applied; True when the parent's adapter is the one
    to train on (continue_adapter), so no new LoRA is added."""
    model = merge_adapters(model, run.get("merge_adapters", []))
    if run.get("continue_adapter"):
        adapter = Path(run["continue_adapter"])
        trainable = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        return trainable, True
    return model, False
