"""Fine-tuning jobs: submit (seed path /fine_tune_model), read, list, follow events, cancel."""

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import JobStoreDep, JobSubmissionsDep, SettingsDep
from api.errors import InvalidInput
from api.finetune.data import Upload
from api.finetune.spec import ExportRequest, FineTuneSpec
from api.jobs.schemas import EventPublic, JobPublic, JobsPublic
from api.problems import responses
from api.routes.forms import read_upload, spec_fields

router = APIRouter(tags=["fine-tuning"])
_FILE_FIELDS = {"train_file", "eval_file"}
_MAX_TRAIN_FILES = 16
_DATASET_HELP = "upload `train_file`, or give `dataset_id` (a finished dataset from GET /datasets)"


class FineTuneForm(FineTuneSpec):
    """The spec as multipart form fields; the file fields arrive in the same form."""

    model_config = ConfigDict(extra="allow")

    dataset_id: str | None = Field(
        None,
        max_length=100,
        description="Train on a finished generated dataset "
        "(GET /datasets) instead of uploading train_file.",
    )

    def spec(self) -> FineTuneSpec:
        fields = spec_fields(self, _FILE_FIELDS, "FineTuneSpec")
        fields.pop("dataset_id")
        return FineTuneSpec(**fields)


@router.post(
    "/fine_tune_model",
    status_code=202,
    response_model=JobPublic,
    responses=responses(404, 409, 413),
)
async def create_fine_tune_job(
    form: Annotated[FineTuneForm, Form()],
    jobs: JobSubmissionsDep,
    response: Response,
    train_file: Annotated[
        list[UploadFile] | None,
        File(
            description="CSV, JSON or JSONL training data (or give `dataset_id`); repeat the "
            "field for several files, mixed by `train_file_weights`."
        ),
    ] = None,
    eval_file: Annotated[UploadFile | None, File(description="Optional validation data.")] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JobPublic:
    """Validate the data and start a fine-tuning job; answers 202 at once with the job."""
    train_files = [f for f in train_file or [] if f.filename]
    uploaded = bool(train_files)
    if uploaded == (form.dataset_id is not None):
        raise InvalidInput(
            f"Training data: {_DATASET_HELP}, not both."
            if uploaded
            else f"No training data: {_DATASET_HELP}."
        )
    limit = jobs.settings.max_dataset_bytes
    if len(train_files) > _MAX_TRAIN_FILES:
        raise InvalidInput(f"At most {_MAX_TRAIN_FILES} train_file uploads are accepted.")
    train: Upload | list[Upload]
    if uploaded:
        train = [await read_upload(f, "train_file", limit) for f in train_files]
    else:
        train = jobs.dataset_upload(form.dataset_id or "")
    evaluation = (
        await read_upload(eval_file, "eval_file", limit)
        if eval_file is not None and eval_file.filename
        else None
    )
    job, created = await run_in_threadpool(
        jobs.fine_tune,
        spec=form.spec(),
        train=train,
        eval_=evaluation,
        idempotency_key=idempotency_key,
    )
    if not created:
        response.status_code = 200
    return JobPublic.of(job)


@router.get("/jobs", response_model=JobsPublic)
def list_jobs(store: JobStoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> JobsPublic:
    """List jobs, newest first."""
    jobs = [JobPublic.of(j) for j in store.list(limit=limit)]
    return JobsPublic(data=jobs, count=len(jobs))


@router.get("/jobs/{job_id}", response_model=JobPublic, responses=responses(404))
def read_job(job_id: str, store: JobStoreDep) -> JobPublic:
    """A job's state, progress and, at the end, metrics."""
    return JobPublic.of(store.require(job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobPublic, responses=responses(404, 409))
def cancel_job(job_id: str, jobs: JobSubmissionsDep) -> JobPublic:
    """Cancel a queued or running job. Cancelling a cancelled job changes nothing."""
    return JobPublic.of(jobs.cancel(job_id))


@router.post(
    "/jobs/{job_id}/export",
    status_code=202,
    response_model=JobPublic,
    responses=responses(404, 409),
)
def export_job(
    job_id: str,
    body: ExportRequest,
    jobs: JobSubmissionsDep,
) -> JobPublic:
    """Export a finished job's adapter again (after a failed export, or in another mode)."""
    return JobPublic.of(jobs.export(job_id, body))


@router.get(
    "/jobs/{job_id}/events",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-sent events, ending with the job's end.",
        },
        **responses(404),
    },
)
def stream_job_events(
    job_id: str,
    store: JobStoreDep,
    settings: SettingsDep,
    after: Annotated[
        int,
        Query(
            ge=0,
            le=2**63 - 1,  # SQLite's INTEGER
            description="Only events after this seq.",
        ),
    ] = 0,
    follow: Annotated[bool, Query(description="Keep streaming until the job ends.")] = True,
) -> StreamingResponse:
    """Replay the job's events, then follow new ones until a terminal event."""
    store.require(job_id)
    frames = (
        f"id: {event.seq}\nevent: {event.type}\ndata: {EventPublic.of(event).model_dump_json()}\n\n"
        for event in store.follow(
            job_id, after=after, follow=follow, poll_seconds=settings.job_poll_seconds
        )
    )

    return StreamingResponse(
        frames, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
