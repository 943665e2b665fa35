"""What a finished job leaves to read: per-row predictions and the checkpoints list."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.deps import JobStoreDep
from api.finetune.checkpoints import list_checkpoints
from api.finetune.predictions import MEDIA_TYPES, Format, read_predictions, render
from api.problems import responses

router = APIRouter(tags=["fine-tuning"])


class CheckpointPublic(BaseModel):
    step: int
    epoch: float | None
    train_loss: float | None = Field(None, description="The last training loss logged.")
    eval_loss: float | None = Field(None, description="Validation loss at this step, if run.")
    created_at: str
    best: bool = Field(..., description="The lowest eval loss of the listed checkpoints.")


class CheckpointsPublic(BaseModel):
    data: list[CheckpointPublic]
    count: int


@router.get(
    "/jobs/{job_id}/predictions",
    responses={
        200: {
            "content": {"application/x-ndjson": {}, "text/csv": {}},
            "description": "One record per test row.",
        },
        **responses(404),
    },
)
def read_job_predictions(
    job_id: str,
    store: JobStoreDep,
    format: Annotated[Format, Query(description="`jsonl` (default) or `csv`.")] = "jsonl",
) -> StreamingResponse:
    """The job's per-row test predictions: input, reference, the model's output and ROUGE-L,
    and the base's (or the comparison model's)."""
    job = store.require(job_id)
    rows = read_predictions(job.files.predictions, job_id)
    return StreamingResponse(
        render(rows, format),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{job_id}-predictions.{format}"'},
    )


@router.get(
    "/jobs/{job_id}/checkpoints", response_model=CheckpointsPublic, responses=responses(404)
)
def list_job_checkpoints(job_id: str, store: JobStoreDep) -> CheckpointsPublic:
    """The job's saved checkpoints: step, train loss, eval loss, created; the lowest eval
    loss is marked `best`. Export one with POST /jobs/{id}/export and `checkpoint`."""
    job = store.require(job_id)
    data = [CheckpointPublic(**c) for c in list_checkpoints(job.files)]
    return CheckpointsPublic(data=data, count=len(data))
