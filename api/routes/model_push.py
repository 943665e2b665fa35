"""POST /models/{name}/push: a job that uploads a model's files and a card to a Hub repo."""

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import JobStoreDep, ModelFilesDep, RegistryDep, RunnerDep, SettingsDep
from api.jobs.schemas import JobPublic
from api.models.push import PushRequest, submit_push
from api.problems import responses
from api.routes.model_files import ModelPath

router = APIRouter(tags=["models"])


@router.post(
    "/models/{name}/push", status_code=202, response_model=JobPublic, responses=responses(404, 409)
)
async def push_model(
    name: ModelPath,
    body: PushRequest,
    settings: SettingsDep,
    files: ModelFilesDep,
    registry: RegistryDep,
    store: JobStoreDep,
    runner: RunnerDep,
) -> JobPublic:
    """Push a model's files (default: the served GGUF and the PEFT adapter) and a model card
    written from its fine-tuning job to a Hugging Face Hub repo, as a job (202 at once; follow
    GET /jobs/{id}/events). The token is HF_TOKEN in the server's environment: without it,
    409. A Hub that refuses or cannot be reached fails the job with the reason."""
    job = await run_in_threadpool(
        submit_push,
        settings=settings,
        files=files,
        registry=registry,
        store=store,
        runner=runner,
        name=name,
        request=body,
    )
    return JobPublic.of(job)
