"""Submit, read, download and delete generated datasets. A dataset is a `dataset` job: its id
is the job's id, its rows are the job directory's dataset.jsonl."""

import csv
import io
import json
import shutil
from collections.abc import Callable
from typing import Any

from api.config import Settings
from api.datasets.generate import generate, read_rows
from api.datasets.prompts import check_templates
from api.datasets.spec import GenerateSpec
from api.datasets.teacher import OpenAITeacher, Pace, ServedTeacher, Teacher, TeacherError
from api.errors import Conflict, InvalidInput, NotFound
from api.finetune.data import Upload, load_examples, resolve_seed
from api.jobs.enqueue import enqueue
from api.jobs.runner import JobRunner
from api.jobs.store import ACTIVE, Job, JobStore
from api.models.catalog import BaseCatalog
from api.models.registry import VariantRegistry
from api.models.service import resolve_model
from api.rag.documents import DocumentService
from api.serving.base import ModelServer

SAMPLES = 5


def _check_teacher(
    spec: GenerateSpec, settings: Settings, catalog: BaseCatalog, registry: VariantRegistry
) -> None:
    if spec.openai_model is not None:
        if not settings.teacher_base_url:
            raise InvalidInput(
                "teacher `openai:...` needs an endpoint: the operator sets "
                "LLM_TEACHER_BASE_URL (and LLM_TEACHER_API_KEY); or name a "
                "served model from GET /listModels."
            )
        return
    try:
        resolve_model(catalog=catalog, registry=registry, name=spec.teacher)
    except NotFound as exc:
        raise NotFound(f"Unknown teacher: {exc.detail}") from exc


def _seeds(raw: bytes, filename: str, settings: Settings) -> list[dict[str, str]]:
    _, examples = load_examples(
        raw, filename=filename, label="seed_file", max_rows=settings.max_seed_rows
    )
    seeds = []
    for messages in examples:
        user = next(m["content"] for m in messages if m["role"] == "user")
        seeds.append({"instruction": user.strip(), "output": messages[-1]["content"].strip()})
    return seeds


def _passages(spec: GenerateSpec, documents: DocumentService) -> list[dict[str, Any]]:
    assert spec.model is not None
    names = None if spec.documents is None else [n.strip() for n in spec.documents if n.strip()]
    records = documents.get(model=spec.model, names=names)  # NotFound names what exists
    passages = documents.store.passages(spec.model, [r.import_id for r in records])
    if not passages:
        raise InvalidInput(
            f"The documents of {spec.model!r} have no text to write questions "
            "from; import them again."
        )
    return passages


def submit_generation(
    *,
    settings: Settings,
    catalog: BaseCatalog,
    registry: VariantRegistry,
    documents: DocumentService,
    store: JobStore,
    runner: JobRunner,
    spec: GenerateSpec,
    seed_file: Upload | None,
    prompt_files: list[Upload] | None = None,
) -> Job:
    """Validate everything, snapshot the inputs into the job directory, queue the job."""
    if (seed_file is None) == (spec.model is None):
        raise InvalidInput(
            "Give either a `seed_file` (instruction/input/output examples, CSV "
            "or JSONL) or a `model` whose imported documents to write pairs "
            "from, not both."
        )
    if spec.documents is not None and spec.model is None:
        raise InvalidInput("`documents` needs `model`: the model whose documents they are.")
    if spec.count > settings.max_dataset_target:
        raise InvalidInput(
            f"count={spec.count} is over this server's limit of "
            f"{settings.max_dataset_target} pairs (LLM_MAX_DATASET_TARGET)."
        )
    _check_teacher(spec, settings, catalog, registry)
    if spec.openai_model is None and (spec.concurrency > 1 or spec.requests_per_minute):
        raise InvalidInput(
            "`concurrency` and `requests_per_minute` apply to an `openai:` teacher; a served "
            "model answers one request at a time: leave them out."
        )
    prompts = check_templates(prompt_files or [])
    if prompts and seed_file is None:
        raise InvalidInput(
            "`prompt_file` templates write new tasks from seed tasks: give a `seed_file` too "
            "(documents mode has its own prompts)."
        )
    if seed_file is not None:
        name, rows = "seeds", _seeds(seed_file.content, seed_file.filename, settings)
    else:
        resolve_model(catalog=catalog, registry=registry, name=spec.model or "")
        name, rows = "chunks", _passages(spec, documents)
    resolved = spec.model_copy(update={"seed": resolve_seed(spec.seed)}).model_dump(mode="json")
    job = store.create(
        model_name=spec.model or spec.teacher,
        base_model=spec.teacher,
        spec=resolved,
        jobs_dir=settings.jobs_dir,
        kind="dataset",
    )

    def fill() -> None:
        job.files.data_file(name).write_text(to_jsonl(rows))
        if prompts:
            job.files.data_file("prompts").write_text(to_jsonl(prompts))
        store.set_progress(
            job.id,
            {
                "source": "seeds" if seed_file else "documents",
                "inputs": len(rows),
                "rows": 0,
                "requested": spec.count,
            },
        )

    enqueue(
        store,
        runner,
        job,
        resolved,
        fill,
        f"{len(rows)} {'seed tasks' if seed_file else 'passages'} read; the job is queued.",
    )
    return store.get(job.id) or job


def teacher_for(
    job: Job,
    *,
    settings: Settings,
    catalog: BaseCatalog,
    registry: VariantRegistry,
    server: ModelServer,
) -> Teacher:
    spec = GenerateSpec(**job.spec)
    if spec.openai_model is not None:
        if not settings.teacher_base_url:
            raise TeacherError(
                "LLM_TEACHER_BASE_URL is no longer set; the operator must set it "
                "for an `openai:` teacher."
            )
        pace = Pace(
            requests_per_minute=spec.requests_per_minute,
            burst=spec.concurrency,
            max_retries=spec.rate_limit_retries,
        )
        return OpenAITeacher(settings, spec.openai_model, pace)
    try:
        model = resolve_model(catalog=catalog, registry=registry, name=spec.teacher)
    except NotFound as exc:
        raise TeacherError(f"The teacher model is gone: {exc.detail}") from exc
    return ServedTeacher(server, model)


def generation_step(
    *,
    settings: Settings,
    catalog: BaseCatalog,
    registry: VariantRegistry,
    server: ModelServer,
    store: JobStore,
) -> Callable[[Job, Callable[[], bool]], dict[str, Any]]:
    """The runner's in-process step for `dataset` jobs."""

    def step(job: Job, should_stop: Callable[[], bool]) -> dict[str, Any]:
        teacher = teacher_for(
            job, settings=settings, catalog=catalog, registry=registry, server=server
        )
        try:
            return generate(job, store=store, teacher=teacher, should_stop=should_stop)
        finally:
            close = getattr(teacher, "close", None)
            if close is not None:
                close()

    return step


# ------------------------------------------------------------------ reading and deleting
def dataset_job(store: JobStore, dataset_id: str) -> Job:
    job = store.get(dataset_id)
    if job is None or job.kind != "dataset":
        raise NotFound(f"Dataset {dataset_id!r} not found; GET /datasets lists datasets.")
    return job


def list_datasets(store: JobStore, limit: int) -> list[Job]:
    return store.list(limit=limit, kind="dataset")


def samples(job: Job) -> list[dict[str, Any]]:
    return read_rows(job.files)[:SAMPLES]


def finished_rows(job: Job) -> list[dict[str, Any]]:
    """The rows of a dataset whose job succeeded; Conflict otherwise."""
    if job.state != "succeeded":
        raise Conflict(
            f"Dataset {job.id} is {job.state}; only a finished (succeeded) dataset "
            "can be downloaded or trained on. Follow it with GET /jobs/"
            f"{job.id}/events."
        )
    return read_rows(job.files)


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    fields = ["instruction", "input", "output", "document", "page"]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        source = row.get("source") or {}
        writer.writerow(
            {**row, "document": source.get("document", ""), "page": source.get("page", "")}
        )
    return out.getvalue()


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def training_file(store: JobStore, dataset_id: str) -> tuple[str, bytes]:
    """A finished dataset as an Alpaca JSONL training file (file name, content)."""
    job = dataset_job(store, dataset_id)
    rows = finished_rows(job)
    plain = [
        {"instruction": r["instruction"], "input": r.get("input", ""), "output": r["output"]}
        for r in rows
    ]
    return f"{dataset_id}.jsonl", to_jsonl(plain).encode()


def delete_dataset(store: JobStore, dataset_id: str) -> None:
    job = dataset_job(store, dataset_id)
    if job.state in ACTIVE:
        raise Conflict(
            f"Dataset {dataset_id} is still {job.state}; cancel it first with "
            f"POST /jobs/{dataset_id}/cancel."
        )
    store.delete(job.id)
    shutil.rmtree(job.job_dir, ignore_errors=True)
