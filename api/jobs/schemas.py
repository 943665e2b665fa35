"""Job bodies as the API shows them (OpenAI's fine-tuning job shape where it fits)."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from api.jobs.store import Event, Job, JobKindName, JobState

__all__ = ["EventPublic", "JobPublic", "JobState", "JobsPublic"]


_OBJECTS: dict[str, Literal["dataset.job", "evaluation.job", "push.job"]] = {
    "dataset": "dataset.job",
    "evaluate": "evaluation.job",
    "push": "push.job",
}


class JobPublic(BaseModel):
    id: str
    object: Literal["fine_tuning.job", "dataset.job", "evaluation.job", "push.job"] = (
        "fine_tuning.job"
    )
    kind: JobKindName = Field(
        "fine_tune",
        description="`export` jobs re-export an earlier job's adapter; `dataset` "
        "jobs generate training data (POST /datasets/generate); `evaluate` jobs score a "
        "model on a test file (POST /evaluate); `push` jobs upload a model's files to a "
        "Hugging Face Hub repo (POST /models/{name}/push).",
    )
    status: JobState = Field(
        ...,
        description="validating_files, queued, running, (exporting,) "
        "then succeeded, failed or cancelled.",
    )
    model_name: str = Field(..., description="The model this job produces.")
    base_model: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None = Field(None, description="Why the job failed, when it did.")
    progress: dict[str, Any] = Field(
        default_factory=dict,
        description="dataset sizes, step, total_steps, epoch, loss, eval_loss, learning_rate, "
        "tokens_per_second, eta_seconds",
    )
    metrics: dict[str, Any] | None = Field(
        None, description="At the end: eval_loss, perplexity, ROUGE of tuned vs base."
    )
    hyperparameters: dict[str, Any] = Field(..., description="The resolved job spec.")

    @classmethod
    def of(cls, job: Job) -> "JobPublic":
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.state,
            object=_OBJECTS.get(job.kind, "fine_tuning.job"),
            model_name=job.model_name,
            base_model=job.base_model,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=job.error,
            progress=job.progress,
            metrics=job.metrics,
            hyperparameters=job.spec,
        )


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


class EventPublic(BaseModel):
    seq: int
    created_at: str
    type: str
    message: str
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> "EventPublic":
        return cls(
            seq=event.seq,
            created_at=event.created_at,
            type=event.type,
            message=event.message,
            data=event.data,
        )
