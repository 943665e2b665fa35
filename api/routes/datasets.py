"""Generated training data: POST /datasets/generate (a job), list, read, download, delete."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.datasets import service
from api.datasets.spec import GenerateSpec
from api.deps import JobStoreDep, JobSubmissionsDep
from api.jobs.schemas import JobPublic, JobState
from api.jobs.store import Job
from api.models.schemas import Message
from api.problems import responses
from api.routes.forms import read_upload, spec_fields

router = APIRouter(tags=["datasets"])


class GenerateForm(GenerateSpec):
    """The spec as multipart form fields; `seed_file` arrives in the same form."""

    model_config = ConfigDict(extra="allow")

    def spec(self) -> GenerateSpec:
        fields = spec_fields(self, {"seed_file", "prompt_file"}, "GenerateSpec")
        if fields.get("documents"):  # `-F documents=a.pdf,b.pdf` or repeated fields
            fields["documents"] = [n for v in fields["documents"] for n in v.split(",")]
        return GenerateSpec(**fields)


class DatasetPublic(BaseModel):
    id: str = Field(..., description="The dataset's id: its generation job's id.")
    object: Literal["dataset"] = "dataset"
    status: JobState
    source: str | None = Field(None, description="`seeds` or `documents`.")
    teacher: str
    model: str | None = Field(None, description="Documents mode: whose documents.")
    requested: int
    rows: int = Field(..., description="Pairs kept so far.")
    rounds: int = Field(0, description="Teacher rounds used.")
    dropped: dict[str, int] = Field(
        default_factory=dict, description="Candidates dropped by each filter."
    )
    complete: bool = Field(False, description="All requested pairs were produced.")
    report: str | None = Field(None, description="How the run went, and why pairs were dropped.")
    throughput: dict[str, Any] = Field(
        default_factory=dict,
        description="This run's teacher requests, requests and kept pairs per minute, answers "
        "that were HTTP 429 (`rate_limited`), seconds waited for the rate limit, wall seconds, "
        "concurrency.",
    )
    error: str | None = None
    created_at: str
    finished_at: str | None
    samples: list[dict[str, Any]] = Field(default_factory=list, description="The first few pairs.")
    hyperparameters: dict[str, Any]

    @classmethod
    def of(cls, job: Job, with_samples: bool = False) -> "DatasetPublic":
        info = {**job.progress, **(job.metrics or {})}
        return cls(
            id=job.id,
            status=job.state,
            source=info.get("source"),
            teacher=job.spec["teacher"],
            model=job.spec.get("model"),
            requested=job.spec["count"],
            rows=info.get("rows", 0),
            rounds=info.get("rounds", 0),
            dropped=info.get("dropped", {}),
            complete=bool(info.get("complete", False)),
            report=info.get("report"),
            throughput=info.get("throughput") or {},
            error=job.error,
            created_at=job.created_at,
            finished_at=job.finished_at,
            samples=service.samples(job) if with_samples else [],
            hyperparameters=job.spec,
        )


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


@router.post(
    "/datasets/generate", status_code=202, response_model=JobPublic, responses=responses(404)
)
async def generate_dataset(
    form: Annotated[GenerateForm, Form()],
    jobs: JobSubmissionsDep,
    seed_file: Annotated[
        UploadFile | None,
        File(
            description="Seed tasks: CSV or JSONL with instruction/input/output (or input/output, "
            "chat messages); leave out to write pairs from `model`'s documents."
        ),
    ] = None,
    prompt_file: Annotated[
        list[UploadFile] | None,
        File(
            description="Self-instruct prompt templates, one per topic (repeat the field); "
            "placeholders {seed_examples}, {count}, {guidance}; the job rotates through them."
        ),
    ] = None,
) -> JobPublic:
    """Start a dataset-generation job (202 at once). Follow it like a fine-tuning job:
    GET /jobs/{id}, GET /jobs/{id}/events, POST /jobs/{id}/cancel."""
    seeds = (
        await read_upload(seed_file, "seed_file", jobs.settings.max_dataset_bytes)
        if seed_file is not None and seed_file.filename
        else None
    )
    prompts = [
        await read_upload(p, "prompt_file", jobs.settings.max_dataset_bytes)
        for p in prompt_file or []
        if p.filename
    ]
    job = await run_in_threadpool(
        jobs.generate_dataset, spec=form.spec(), seed_file=seeds, prompt_files=prompts
    )
    return JobPublic.of(job)


@router.get("/datasets", response_model=DatasetsPublic)
def list_datasets(
    store: JobStoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> DatasetsPublic:
    """Generated datasets, newest first (running ones too)."""
    data = [DatasetPublic.of(j) for j in service.list_datasets(store, limit)]
    return DatasetsPublic(data=data, count=len(data))


@router.get("/datasets/{dataset_id}", response_model=DatasetPublic, responses=responses(404))
def read_dataset(dataset_id: str, store: JobStoreDep) -> DatasetPublic:
    """Counts, filter statistics, the report and a few sample pairs."""
    return DatasetPublic.of(service.dataset_job(store, dataset_id), with_samples=True)


@router.get(
    "/datasets/{dataset_id}/download",
    response_class=Response,
    responses={
        200: {
            "content": {"application/x-ndjson": {}, "text/csv": {}},
            "description": "The pairs: JSONL (instruction, input, output, source) or CSV.",
        },
        **responses(404, 409),
    },
)
def download_dataset(
    dataset_id: str,
    store: JobStoreDep,
    format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",
) -> Response:
    """The finished dataset as a file to keep, edit, or upload as train_file."""
    rows = service.finished_rows(service.dataset_job(store, dataset_id))
    body, media = (
        (service.to_csv(rows), "text/csv")
        if format == "csv"
        else (service.to_jsonl(rows), "application/x-ndjson")
    )
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{dataset_id}.{format}"'},
    )


@router.delete("/datasets/{dataset_id}", response_model=Message, responses=responses(404, 409))
def delete_dataset(dataset_id: str, store: JobStoreDep) -> Message:
    """Delete a finished, failed or cancelled dataset (cancel a running one first)."""
    service.delete_dataset(store, dataset_id)
    return Message(message=f"Dataset {dataset_id!r} deleted.")
