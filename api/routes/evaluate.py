"""POST /evaluate: an evaluate job scoring a model on an uploaded test file."""

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import ConfigDict
from starlette.concurrency import run_in_threadpool

from api.deps import JobSubmissionsDep
from api.finetune.evaluation import EvaluateSpec
from api.jobs.schemas import JobPublic
from api.problems import responses
from api.routes.forms import read_upload, spec_fields

router = APIRouter(tags=["fine-tuning"])


class EvaluateForm(EvaluateSpec):
    model_config = ConfigDict(extra="allow")

    def spec(self) -> EvaluateSpec:
        return EvaluateSpec(**spec_fields(self, {"test_file"}, "EvaluateSpec"))


@router.post(
    "/evaluate", status_code=202, response_model=JobPublic, responses=responses(404, 409, 413)
)
async def create_evaluate_job(
    form: Annotated[EvaluateForm, Form()],
    jobs: JobSubmissionsDep,
    test_file: Annotated[UploadFile, File(description="CSV, JSON or JSONL test rows.")],
) -> JobPublic:
    """Validate and queue an `evaluate` job: loss, perplexity and ROUGE of `model` and of
    `compare_to` on the test rows, with per-row predictions (GET /jobs/{id}/predictions)."""
    test = await read_upload(test_file, "test_file", jobs.settings.max_dataset_bytes)
    job = await run_in_threadpool(jobs.evaluate, spec=form.spec(), test=test)
    return JobPublic.of(job)
