"""Which weights a model name stands for, and where a fine-tuned model came from.

A fine-tuned model is its provisioned base's HF checkpoint plus a chain of LoRA adapters:
the adapters of the models it was trained from (merged in order) and its own. run.json
records a job's chain (`merge_adapters`, `continue_adapter`) and its parent; the registry
entry of every published model records its job (`lineage`), so the chain can be found again
to evaluate the model (POST /evaluate) or to train it further (`base_model`).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.errors import Conflict, InvalidInput, NotFound
from api.finetune.checkpoints import checkpoint_dir
from api.jobs.store import Job, JobStore
from api.models.catalog import BaseCatalog
from api.models.registry import VariantRegistry
from api.serving.base import LibraryModel


@dataclass(frozen=True)
class Weights:
    """`base` (a provisioned base name) + `adapters` merged in order."""

    name: str
    base: str
    hf_dir: Path
    adapters: list[str] = field(default_factory=list)
    system_prompt: str | None = None
    job: str | None = None  # the training job of a fine-tuned model or checkpoint

    def run_json(self) -> dict[str, Any]:
        return {"hf_dir": str(self.hf_dir), "adapters": self.adapters}


def base_weights(name: str, catalog: BaseCatalog, label: str) -> Weights:
    base = catalog.get(name)
    if base is None:
        known = ", ".join(b.name for b in catalog.list()) or "none"
        raise NotFound(f"{label}: model {name!r} not found. Base models: {known}.")
    if isinstance(base, LibraryModel) or base.hf_path is None:
        raise InvalidInput(
            f"{label}: base model {name!r} has no Hugging Face checkpoint (an Ollama library "
            "model keeps only GGUF weights); provision one with load_base_model.py --hf."
        )
    return Weights(name=name, base=name, hf_dir=base.hf_path)


def job_chain(job: Job) -> list[str]:
    """The adapters merged under a job's own adapter (empty for a job trained on a base)."""
    run = json.loads(job.files.run.read_text()) if job.files.run.is_file() else {}
    return list(run.get("merge_adapters", []))


def job_weights(ref: str, store: JobStore, catalog: BaseCatalog, label: str) -> Weights:
    """`job:ID` (its final adapter) or `job:ID@STEP` (a checkpoint's)."""
    job_id, _, step = ref.removeprefix("job:").partition("@")
    job = store.get(job_id)
    if job is None or job.kind not in ("fine_tune", "export"):
        raise NotFound(f"{label}: no fine-tuning job {job_id!r} (GET /jobs lists them).")
    if job.kind == "export":  # an export job's adapter is its source job's
        return job_weights(f"job:{job.progress.get('source_job')}", store, catalog, label)
    if not job.terminal:
        raise Conflict(f"{label}: job {job_id} is still {job.state}; wait for it to end.")
    if step:
        if not step.isdigit():
            raise InvalidInput(f"{label}: {ref!r}: the checkpoint after @ must be a step number.")
        adapter = checkpoint_dir(job.files, job_id, int(step))
    elif job.files.has_adapter():
        adapter = job.files.adapter
    else:
        raise InvalidInput(
            f"{label}: job {job_id} has no trained adapter ({job.state}); name one of its "
            f"checkpoints as job:{job_id}@STEP (GET /jobs/{job_id}/checkpoints)."
        )
    base = base_weights(job.base_model, catalog, label)  # the root base of a chain
    return Weights(
        name=ref,
        base=base.name,
        hf_dir=base.hf_dir,
        adapters=[*job_chain(job), str(adapter)],
        system_prompt=job.spec.get("system_prompt"),
        job=job_id,
    )


def resolve(
    name: str, catalog: BaseCatalog, registry: VariantRegistry, store: JobStore, label: str
) -> Weights:
    """A base, a registered model (fine-tuned, or a base with a system prompt), or
    `job:ID[@STEP]`, as the weights to load."""
    if name.startswith("job:"):
        return job_weights(name, store, catalog, label)
    if catalog.get(name) is not None:
        return base_weights(name, catalog, label)
    variant = registry.get(name)
    if variant is None:
        raise NotFound(f"{label}: no model named {name!r} (GET /listModels lists them).")
    trained = (variant.lineage or {}).get("job")
    if trained is None:  # made with /createModel: the base with a system prompt
        base = base_weights(variant.base_model, catalog, label)
        return Weights(
            name=name, base=base.name, hf_dir=base.hf_dir, system_prompt=variant.system_prompt
        )
    step = (variant.lineage or {}).get("checkpoint")
    weights = job_weights(f"job:{trained}" + (f"@{step}" if step else ""), store, catalog, label)
    return Weights(**{**weights.__dict__, "name": name, "system_prompt": variant.system_prompt})


def parent_of(
    base_model: str,
    continue_adapter: bool,
    catalog: BaseCatalog,
    registry: VariantRegistry,
    store: JobStore,
) -> tuple[str, dict[str, Any]]:
    """A training job's root base and what run.json records of its parent: `base_model` is a
    base (no parent), or a fine-tuned model whose adapters are merged into its base (a new
    adapter is trained on top) or, with continue_adapter, whose last adapter trains on."""
    if catalog.get(base_model) is not None or registry.get(base_model) is None:
        if continue_adapter:
            raise InvalidInput(
                f"continue_adapter: base_model {base_model!r} is not a fine-tuned model; "
                "continue_adapter applies when base_model names one (GET /listModels)."
            )
        return base_model, {}
    parent = resolve(base_model, catalog, registry, store, "base_model")
    if parent.job is None:
        raise InvalidInput(
            f"base_model: {base_model!r} is a variant of {parent.base!r} without trained "
            f"weights (a system prompt only); fine-tune {parent.base!r} instead."
        )
    chain = parent.adapters[:-1] if continue_adapter else parent.adapters
    return parent.base, {
        "base": parent.base,
        "merge_adapters": chain,
        "continue_adapter": parent.adapters[-1] if continue_adapter else None,
        "parent_model": base_model,
        "parent_job": parent.job,
    }


def lineage_of(job: Job) -> dict[str, Any]:
    """What a published model's registry entry records: the training job (and checkpoint)
    it came from, and the fine-tuned model and job it was trained from, if any."""
    trained = job.progress.get("source_job", job.id) if job.kind == "export" else job.id
    run = json.loads(job.files.run.read_text()) if job.files.run.is_file() else {}
    lineage = {
        "job": trained,
        "checkpoint": job.progress.get("checkpoint") if job.kind == "export" else None,
        "parent_model": run.get("parent_model"),
        "parent_job": run.get("parent_job"),
    }
    return {k: v for k, v in lineage.items() if v is not None}
