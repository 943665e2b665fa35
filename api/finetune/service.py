"""Submit a fine-tuning job: validate everything first, then write the job directory.

Nothing is created unless the spec, the base model and every row of the data are valid;
all problems are reported at once. The resolved spec (with the seed actually used) is
saved as spec.json next to the job's outputs.
"""

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from jinja2.exceptions import TemplateError

from api.config import Settings
from api.errors import Conflict, InvalidInput, NotFound
from api.finetune import lineage, mixing
from api.finetune.attention import choose_attention
from api.finetune.checkpoints import checkpoint_dir
from api.finetune.data import (
    Keys,
    Messages,
    Split,
    Upload,
    load_examples,
    resolve_seed,
    split_examples,
)
from api.finetune.device import TrainingDevice, fit
from api.finetune.formats import prepare, resolve_system_role, template_for
from api.finetune.lengths import chat_template, too_long
from api.finetune.precision import precision_reason
from api.finetune.preference import load_preferences, with_rejected
from api.finetune.quantised_base import merge_problem, quantised_base_problem
from api.finetune.sharding import sharding_problem
from api.finetune.spec import ExportRequest, FineTuneSpec
from api.finetune.truncate import truncate_rows
from api.jobs.capacity import gpus_problem, job_device, training_capacity
from api.jobs.enqueue import enqueue
from api.jobs.runner import JobRunner
from api.jobs.store import Job, JobStore
from api.models.catalog import BaseCatalog
from api.models.registry import VariantRegistry
from api.serving.base import LibraryModel
from api.serving.ollama_adapters import adapter_problem


def _check_name_free(
    spec: FineTuneSpec, catalog: BaseCatalog, registry: VariantRegistry, store: JobStore
) -> None:
    name = spec.model_name
    if catalog.get(name) is not None or registry.get(name) is not None:
        raise Conflict(
            f"A model named {name!r} already exists; choose another model_name or "
            "delete the model first."
        )
    if any(
        j.model_name == name and j.kind not in ("dataset", "evaluate", "push")
        for j in store.active()
    ):
        raise Conflict(
            f"Another active job is already producing {name!r}; wait for it or "
            "choose another model_name."
        )


def _base_checkpoint(spec: FineTuneSpec, catalog: BaseCatalog, settings: Settings) -> Path:
    base = catalog.get(spec.base_model)
    if base is None:
        known = ", ".join(b.name for b in catalog.list()) or "none"
        raise NotFound(f"Base model {spec.base_model!r} not found. Available base models: {known}.")
    if isinstance(base, LibraryModel):
        raise InvalidInput(
            f"Base model {base.name!r} is Ollama's model {base.ollama_model!r}: Ollama keeps "
            "only GGUF weights, and fine-tuning needs a safetensors (Hugging Face) base. "
            "Provision one with `python load_base_model.py --hf ORG/REPO --name NAME` (or "
            "--from-dir PATH) and fine-tune that; its results are served through Ollama too."
        )
    if base.hf_path is None or not (base.hf_path / "config.json").is_file():
        raise InvalidInput(
            f"Base model {base.name!r} has no Hugging Face checkpoint to train "
            "on; provision it with load_base_model.py."
        )
    if spec.export == "adapter" and settings.backend == "ollama":
        problem = adapter_problem(base.name, base.gguf_path)
        if problem:
            raise InvalidInput(problem)
    return base.hf_path


def _load(
    upload: Upload,
    label: str,
    spec: FineTuneSpec,
    settings: Settings,
    hf_dir: Path,
    notes: dict[str, int] | None = None,
) -> tuple[str, list[Messages]]:
    if len(upload.content) > settings.max_dataset_bytes:
        raise InvalidInput(f"{label} is larger than {settings.max_dataset_bytes} bytes.")
    if spec.method == "sft":
        fmt, examples = load_examples(
            upload.content,
            filename=upload.filename,
            label=label,
            keys=Keys(spec.question_key, spec.answer_key),
            max_rows=settings.max_dataset_rows,
        )
    else:  # dpo, orpo
        fmt, examples = load_preferences(
            upload.content,
            filename=upload.filename,
            label=label,
            max_rows=settings.max_dataset_rows,
        )
    examples = [prepare(m, spec.system_prompt, spec.system_role) for m in examples]
    template = template_for(spec.prompt_format, chat_template(hf_dir))
    try:
        if spec.truncate:
            examples, cut = truncate_rows(
                examples, hf_dir=hf_dir, max_len=spec.max_len, template=template
            )
            if notes is not None:
                notes[f"{label}_truncated_rows"] = cut
        problems = too_long(examples, hf_dir=hf_dir, max_len=spec.max_len, template=template)
        if spec.method != "sft":  # the rejected answers must fit too
            problems += [
                p.replace(" tokens after", " tokens (with the rejected answer) after")
                for p in too_long(
                    with_rejected(examples), hf_dir=hf_dir, max_len=spec.max_len, template=template
                )
            ]
    except (TemplateError, ValueError) as exc:  # the template's raise_exception
        raise InvalidInput(
            f"{label}: the {spec.prompt_format} template of {spec.base_model!r} refuses "
            f"these rows ({exc}); with system messages use system_role=merge (or auto), "
            "which folds the system text into the first user turn."
        ) from exc
    if problems:
        raise InvalidInput(
            f"{label} has {len(problems)} row(s) longer than max_len={spec.max_len} tokens.",
            problems[:50],
        )
    return fmt, examples


def _resolve_format(spec: FineTuneSpec, hf_dir: Path, has_eval_file: bool) -> FineTuneSpec:
    """system_role `auto` decided from the template the rows will use (and recorded);
    test_size refused where there is no split to apply it to."""
    if spec.method != "sft" and (spec.truncate or spec.packing):
        raise InvalidInput(
            f"method: {spec.method} trains on whole prompt/chosen/rejected rows; truncate "
            "and packing apply to sft only."
        )
    if has_eval_file and spec.test_size is not None:
        raise InvalidInput(
            "test_size: the eval_file's rows are the validation and test rows, so there is "
            "no split to size; leave test_size out, or upload no eval_file."
        )
    template = template_for(spec.prompt_format, chat_template(hf_dir))
    return spec.model_copy(update={"system_role": resolve_system_role(spec.system_role, template)})


def _write_jsonl(path: Path, rows: list[Messages]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def submit_fine_tune(
    *,
    settings: Settings,
    catalog: BaseCatalog,
    registry: VariantRegistry,
    store: JobStore,
    runner: JobRunner,
    spec: FineTuneSpec,
    train: Upload | list[Upload],
    eval_: Upload | None,
    idempotency_key: str | None,
    device: TrainingDevice | None = None,
) -> tuple[Job, bool]:
    """Validate and enqueue; returns (job, created). A repeated Idempotency-Key returns the
    job it created the first time. `device` defaults to this host's training device."""
    if idempotency_key:
        existing = store.by_idempotency_key(idempotency_key)
        if existing is not None:
            return existing, False
    device = device or job_device(settings)  # this host's, or the Ray cluster's
    choice = spec.mixed_precision
    spec, problems = fit(spec, device)  # bits, optimizer and mixed_precision filled in
    if problems:
        raise InvalidInput(
            "The training device cannot run this job: " + "; ".join(problems), problems
        )
    too_many = gpus_problem(spec.gpus, training_capacity(settings, device))
    if too_many:
        raise InvalidInput(too_many)
    _check_name_free(spec, catalog, registry, store)
    root, parent = lineage.parent_of(
        spec.base_model, spec.continue_adapter, catalog, registry, store
    )
    if parent.get("merge_adapters") and spec.export == "adapter":
        raise InvalidInput(
            f"export: `adapter` serves one adapter on the base GGUF, but base_model "
            f"{spec.base_model!r} is merged into its base first; set continue_adapter: true "
            "to train its adapter on, or export `merged`."
        )
    hf_dir = _base_checkpoint(spec.model_copy(update={"base_model": root}), catalog, settings)
    quantised = quantised_base_problem(root, hf_dir, device, spec.mixed_precision or "fp32")
    if parent.get("merge_adapters") and not quantised:
        quantised = merge_problem(spec.base_model, root, hf_dir)  # GPTQ: continue_adapter only
    if quantised:
        raise InvalidInput(quantised)
    unshardable = sharding_problem(spec, device.cuda, hf_dir)
    if unshardable:
        raise InvalidInput(unshardable)
    spec = _resolve_format(spec, hf_dir, eval_ is not None)
    notes: dict[str, int] = {}
    uploads = train if isinstance(train, list) else [train]
    formats, per_file, weights = mixing.load_all(
        uploads,
        spec.train_file_weights,
        lambda upload, label: _load(upload, label, spec, settings, hf_dir, notes),
    )
    train_format, train_rows = "+".join(dict.fromkeys(formats)), sum(per_file, [])
    if eval_ is None:
        split = split_examples(
            train_rows, train_size=spec.train_size, seed=spec.seed, test_size=spec.test_size
        )
    else:
        _, eval_rows = _load(eval_, "eval_file", spec, settings, hf_dir, notes)
        # the eval file serves as validation (eval loss) and test (hold-out ROUGE) rows
        split = Split(train_rows, eval_rows, eval_rows, resolve_seed(spec.seed))
    split = replace(split, train=mixing.weighted(split.train, per_file, weights, split.seed))
    resolved = spec.model_copy(update={"seed": split.seed}).model_dump(mode="json")
    try:
        job = store.create(
            model_name=spec.model_name,
            base_model=root,  # the provisioned base (spec.base_model may be a fine-tuned model)
            spec=resolved,
            jobs_dir=settings.jobs_dir,
            idempotency_key=idempotency_key,
        )
    except Conflict:  # the same key won a race meanwhile (another request or replica)
        existing = store.by_idempotency_key(idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return existing, False
    files = job.files
    summary: dict[str, Any] = {
        "format": train_format,
        "train_rows": len(split.train),
        "validation_rows": len(split.validation),
        "test_rows": len(split.test),
        **notes,
        "mixed_precision": precision_reason(choice, spec.mixed_precision, device),
        # the recipe decides again on the host that trains (its metrics say what ran)
        "attention": choose_attention(device.cuda, spec.mixed_precision, device.flash_attn)[1],
    }
    if len(uploads) > 1:
        summary["files"] = [
            {"filename": u.filename, "rows": len(rows), "weight": w}
            for u, rows, w in zip(uploads, per_file, weights, strict=True)
        ]

    def fill() -> None:
        # require_cuda: a job accepted by a service that required CUDA never trains on the CPU
        files.run.write_text(
            json.dumps({"hf_dir": str(hf_dir), "require_cuda": settings.require_cuda, **parent})
        )
        for name, rows in (
            ("train", split.train),
            ("validation", split.validation),
            ("test", split.test),
        ):
            _write_jsonl(files.data_file(name), rows)
        store.set_progress(job.id, {"dataset": summary})

    enqueue(store, runner, job, resolved, fill, "Files validated; the job is queued.", **summary)
    return store.get(job.id) or job, True


def submit_export(
    *,
    settings: Settings,
    catalog: BaseCatalog,
    registry: VariantRegistry,
    store: JobStore,
    runner: JobRunner,
    source_id: str,
    request: ExportRequest,
) -> Job:
    """A new export job from an earlier job's adapter: a retry after a failed export, or
    another export (adapter instead of merged, other quantisations) under a new name."""
    source = store.require(source_id)
    adapter = source.files.adapter
    if source_id in {j.id for j in store.active()}:
        raise Conflict(f"Job {source_id} is still {source.state}; export it when it has ended.")
    fields = request.model_dump(exclude_none=True)
    step = fields.pop("checkpoint", None)
    if step is not None:  # a saved checkpoint's adapter instead of the final one
        adapter = checkpoint_dir(source.files, source_id, step)
    elif not source.files.has_adapter():
        raise Conflict(
            f"Job {source_id} has no trained adapter ({source.state}); only jobs "
            "whose training finished can be exported."
        )
    if source.spec.get("export") == "none":
        fields.setdefault("export", "merged")  # the job trained without exporting
    spec = FineTuneSpec(**{**source.spec, **fields})
    _check_name_free(spec, catalog, registry, store)
    root = spec.model_copy(update={"base_model": source.base_model})  # a chain's base
    _base_checkpoint(root, catalog, settings)  # still there, and servable as exported
    if spec.export == "adapter" and lineage.job_chain(source):
        raise InvalidInput(
            f"export: job {source_id} trained on a merged fine-tuned model; only `merged` "
            "exports it."
        )
    resolved = spec.model_dump(mode="json")
    job = store.create(
        model_name=spec.model_name,
        base_model=source.base_model,
        spec=resolved,
        jobs_dir=settings.jobs_dir,
        kind="export",
    )

    def fill() -> None:
        shutil.copy(source.files.run, job.files.run)
        job.files.export_settings.write_text(json.dumps({"adapter_dir": str(adapter)}))
        for name in ("validation", "test"):
            if source.files.data_file(name).is_file():
                shutil.copy(source.files.data_file(name), job.files.data_file(name))
        store.set_progress(
            job.id, {"source_job": source_id, **({"checkpoint": step} if step else {})}
        )

    enqueue(store, runner, job, resolved, fill, f"Export of job {source_id}'s adapter queued.")
    return store.get(job.id) or job
