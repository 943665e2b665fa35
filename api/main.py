"""App factory: settings, backends, routers and error handlers."""

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import Depends, FastAPI

from api import docs, openapi, problems, studio_site
from api.auth import ApiKeyGate, require_api_key
from api.body_limit import BodyLimit
from api.config import Settings, get_settings
from api.datasets.service import generation_step
from api.finetune.device import check_at_start, training_device
from api.finetune.kinds import fine_tune_kinds
from api.finetune.publish import publish
from api.jobs.kinds import JobKind
from api.jobs.runner import JobRunner
from api.jobs.store import JobStore
from api.models.catalog import BaseCatalog
from api.models.files import ModelFiles
from api.models.in_use import ModelUse
from api.models.library import library_source
from api.models.push import push_step
from api.models.registry import VariantRegistry
from api.models.service import ModelService
from api.rag.documents import DocumentService
from api.rag.model_documents import ModelDocuments
from api.routes import (
    datasets,
    documents,
    evaluate,
    generate,
    health,
    job_outputs,
    jobs,
    model_files,
    model_push,
    models,
    openai,
)
from api.serving.base import ModelServer


def build_server(settings: Settings) -> ModelServer:
    if settings.backend == "ollama":
        from api.serving.ollama import OllamaServer

        return OllamaServer(settings)
    if settings.backend == "llamaserver":
        from api.serving.llama_server import LlamaServer

        return LlamaServer(settings)
    from api.serving.llamacpp import LlamaCppServer

    return LlamaCppServer(settings)


def job_kinds(settings: Settings, app: FastAPI) -> dict[str, JobKind]:
    """What each kind of job runs: training and export as step processes, then publishing
    in this process; dataset generation in this process (its teacher may be our model)."""
    state = app.state
    return {
        **fine_tune_kinds(
            publish=partial(
                publish,
                settings=settings,
                catalog=state.catalog,
                registry=state.registry,
                server=state.server,
            )
        ),
        "dataset": JobKind(
            in_process=generation_step(
                settings=settings,
                catalog=state.catalog,
                registry=state.registry,
                server=state.server,
                store=state.job_store,
            )
        ),
        "push": JobKind(in_process=push_step(files=state.model_files, store=state.job_store)),
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_at_start(require_cuda=settings.require_cuda)  # before anything starts
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        app.state.registry = VariantRegistry(settings.registry_path)
        app.state.server = build_server(settings)
        app.state.catalog = BaseCatalog(
            settings.models_dir, library=library_source(app.state.server, app.state.registry)
        )
        app.state.documents = DocumentService(settings)
        try:  # what an API killed mid-import left: partial uploads, unlisted files and chunks
            app.state.documents.recover(startup=True)
        except Exception:
            logging.getLogger(__name__).exception("could not clean up interrupted imports")
        if settings.database_url is not None:  # step processes read the password from here
            os.environ.setdefault("LLM_DATABASE_URL", settings.database_url.get_secret_value())
        app.state.job_store = JobStore(
            settings.jobs_db,
            replica=settings.replica_id,
            lease_seconds=settings.job_lease_seconds,
        )
        app.state.models = ModelService(
            catalog=app.state.catalog,
            registry=app.state.registry,
            server=app.state.server,
            jobs=app.state.job_store,
            use=app.state.model_use,
            default_base=settings.default_base_model,
            artifacts_root=settings.jobs_dir,
            dependents=[app.state.documents],
        )  # a model's documents go with it
        app.state.model_files = ModelFiles(
            catalog=app.state.catalog,
            registry=app.state.registry,
            jobs=app.state.job_store,
            jobs_dir=settings.jobs_dir,
        )
        app.state.model_documents = ModelDocuments(
            models=app.state.models, documents=app.state.documents
        )
        app.state.runner = JobRunner(
            app.state.job_store,
            settings,
            kinds=job_kinds(settings, app),
            # Ollama holds models in VRAM for minutes; the embedded backend has nothing there
            free_gpu=app.state.server.unload_all if settings.backend == "ollama" else None,
            trains_on_gpu=lambda: training_device().cuda,
        )
        app.state.runner.start()
        if not app.state.catalog.local_list():
            logging.getLogger(__name__).warning(
                "no base model in %s: run `python load_base_model.py`", settings.models_dir
            )
        yield
        app.state.runner.stop()
        app.state.server.close()

    app = FastAPI(
        title="Local LLM platform",
        description="Create model variants, ground answers in your PDFs, fine-tune and serve "
        "local LLMs. Send `Authorization: Bearer <LLM_API_KEY>` when a key is set.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,  # api/docs.py serves both from local files
    )
    app.state.settings = settings
    app.state.model_use = ModelUse(settings)  # imports hold their model against deletes
    openapi.install(app)  # the schema documents the errors that problems.py answers
    problems.install(app)
    docs.install(app)
    studio_site.install(app)
    app.add_middleware(BodyLimit, settings=settings)  # caps bodies while they arrive
    key = settings.api_key.get_secret_value() if settings.api_key else None
    app.add_middleware(ApiKeyGate, api_key=key)  # outermost: 401 before any body is read
    guarded = [Depends(require_api_key)]
    app.include_router(health.router)
    for router in (
        models.router,
        model_files.router,
        model_push.router,
        documents.router,
        generate.router,
        openai.router,
        jobs.router,
        job_outputs.router,
        evaluate.router,
        datasets.router,
    ):
        app.include_router(router, dependencies=guarded)
    return app


def app() -> FastAPI:
    """Entry point for `uvicorn --factory api.main:app`."""
    return create_app()
