"""App factory: settings, backends, routers and error handlers."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import Depends, FastAPI

from api import problems
from api.auth import require_api_key
from api.config import Settings, get_settings
from api.models.catalog import BaseCatalog
from api.models.registry import VariantRegistry
from api.finetune.publish import publish
from api.jobs.runner import JobRunner
from api.jobs.store import JobStore
from api.rag.documents import DocumentService
from api.routes import documents, generate, health, jobs, models, openai
from api.serving.base import ModelServer


def build_server(settings: Settings) -> ModelServer:
    if settings.backend == "ollama":
        from api.serving.ollama import OllamaServer

        return OllamaServer(settings)
    from api.serving.llamacpp import LlamaCppServer

    return LlamaCppServer(settings)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        app.state.catalog = BaseCatalog(settings.models_dir)
        app.state.registry = VariantRegistry(settings.registry_path)
        app.state.server = build_server(settings)
        app.state.documents = DocumentService(settings)
        app.state.job_store = JobStore(settings.jobs_db)
        app.state.runner = JobRunner(
            app.state.job_store, settings,
            after_training=partial(publish, settings=settings, catalog=app.state.catalog,
                                   registry=app.state.registry, server=app.state.server))
        app.state.runner.start()
        if not app.state.catalog.list():
            logging.getLogger(__name__).warning(
                "no base model in %s: run `python load_base_model.py`", settings.models_dir)
        yield
        app.state.runner.stop()
        app.state.server.close()

    app = FastAPI(
        title="Local LLM platform",
        description="Create model variants, ground answers in your PDFs, fine-tune and serve "
                    "local LLMs. Send `Authorization: Bearer <LLM_API_KEY>` when a key is set.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    problems.install(app)
    guarded = [Depends(require_api_key)]
    app.include_router(health.router)
    for router in (models.router, documents.router, generate.router, openai.router,
                   jobs.router):
        app.include_router(router, dependencies=guarded)
    return app


def app() -> FastAPI:
    """Entry point for `uvicorn --factory api.main:app`."""
    return create_app()
