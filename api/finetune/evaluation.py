"""Submit an evaluate job (POST /evaluate): score a model on a test file, no training.

The model is a base, a registered model (fine-tuned or a system-prompt variant) or a job's
adapter or checkpoint (`job:ID[@STEP]`); `compare_to` is the model it is compared with (its
base by default, `none` for no comparison). Everything is validated before the job exists;
the step (api/finetune/evaluate.py) reports loss, perplexity and ROUGE of both, and writes
per-row predictions. A model on a GPTQ base is evaluated on its quantised weights (refused
here where the GPTQ packages are missing).
"""

import json

from pydantic import BaseModel, ConfigDict, Field

from api.config import Settings
from api.errors import InvalidInput
from api.finetune.data import Keys, Upload, load_examples
from api.finetune.lengths import too_long
from api.finetune.lineage import Weights, resolve
from api.finetune.quantised_base import evaluation_problem
from api.jobs.enqueue import enqueue
from api.jobs.runner import JobRunner
from api.jobs.store import Job, JobStore
from api.models.catalog import BaseCatalog
from api.models.registry import VariantRegistry

MODEL_REF = r"^(job:[a-z]+-[0-9a-f]{24}(@[0-9]{1,9})?|[a-z0-9][a-z0-9._-]{0,62})$"


class EvaluateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        ...,
        pattern=MODEL_REF,
        description="The model to evaluate: a base, a fine-tuned model (GET /listModels), "
        "or a job's adapter `job:ID` or checkpoint `job:ID@STEP`.",
    )
    compare_to: str | None = Field(
        None,
        pattern=MODEL_REF,
        description="The model to compare with, in the same forms; default: the evaluated "
        "model's base; `none`: no comparison.",
    )
    system_prompt: str | None = Field(
        None,
        max_length=8000,
        description="System prompt for rows without one; default: the model's own.",
    )
    question_key: str = Field("input", min_length=1, max_length=64)
    answer_key: str = Field("output", min_length=1, max_length=64)
    max_len: int = Field(
        512, ge=16, le=32768, description="Longest test row in tokens; longer rows are refused."
    )
    eval_rows: int = Field(32, ge=1, le=10_000, description="Most test rows scored.")
    eval_max_new_tokens: int = Field(
        64, ge=1, le=2048, description="Tokens generated per row for ROUGE."
    )


def submit_evaluation(
    *,
    settings: Settings,
    catalog: BaseCatalog,
    registry: VariantRegistry,
    store: JobStore,
    runner: JobRunner,
    spec: EvaluateSpec,
    test: Upload,
) -> Job:
    model = resolve(spec.model, catalog, registry, store, "model")
    compare: Weights | None
    if spec.compare_to == "none":
        compare = None
    elif spec.compare_to is None:
        compare = resolve(model.base, catalog, registry, store, "compare_to")
    else:
        compare = resolve(spec.compare_to, catalog, registry, store, "compare_to")
    for label, weights in (("model", model), ("compare_to", compare)):
        if weights is not None and (
            problem := evaluation_problem(label, weights.name, weights.base, weights.hf_dir)
        ):
            raise InvalidInput(problem)
    if len(test.content) > settings.max_dataset_bytes:
        raise InvalidInput(f"test_file is larger than {settings.max_dataset_bytes} bytes.")
    fmt, rows = load_examples(
        test.content,
        filename=test.filename,
        label="test_file",
        keys=Keys(spec.question_key, spec.answer_key),
        max_rows=settings.max_dataset_rows,
    )
    rows = rows[: spec.eval_rows]
    problems = too_long(rows, hf_dir=model.hf_dir, max_len=spec.max_len)
    if problems:
        raise InvalidInput(
            f"test_file has {len(problems)} row(s) longer than max_len={spec.max_len} tokens.",
            problems[:50],
        )
    resolved = spec.model_dump(mode="json")
    job = store.create(
        model_name=spec.model,
        base_model=model.base,
        spec=resolved,
        jobs_dir=settings.jobs_dir,
        kind="evaluate",
    )

    def side(w: Weights | None) -> dict[str, object] | None:
        if w is None:
            return None
        return {**w.run_json(), "name": w.name, "system_prompt": w.system_prompt}

    def fill() -> None:
        run = {"model": side(model), "compare": side(compare)}
        job.files.run.write_text(json.dumps(run))
        job.files.data_file("test").write_text("".join(json.dumps(r) + "\n" for r in rows))
        store.set_progress(job.id, {"dataset": {"format": fmt, "test_rows": len(rows)}})

    summary = {"test_rows": len(rows), "compare_to": compare.name if compare else None}
    enqueue(store, runner, job, resolved, fill, "Test file validated; queued.", **summary)
    return store.get(job.id) or job
