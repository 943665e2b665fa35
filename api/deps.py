"""Annotated dependency aliases for routes; the objects are built in main.lifespan."""

from typing import Annotated

from fastapi import Depends, Request

from api.chat.service import ChatService
from api.config import Settings
from api.job_submissions import JobSubmissions
from api.jobs.runner import JobRunner
from api.jobs.store import JobStore
from api.models.catalog import BaseCatalog
from api.models.files import ModelFiles
from api.models.registry import VariantRegistry
from api.models.service import ModelService
from api.rag.documents import DocumentService
from api.rag.model_documents import ModelDocuments
from api.serving.base import ModelServer


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _catalog(request: Request) -> BaseCatalog:
    return request.app.state.catalog


def _registry(request: Request) -> VariantRegistry:
    return request.app.state.registry


def _server(request: Request) -> ModelServer:
    return request.app.state.server


SettingsDep = Annotated[Settings, Depends(_settings)]
CatalogDep = Annotated[BaseCatalog, Depends(_catalog)]
RegistryDep = Annotated[VariantRegistry, Depends(_registry)]
ServerDep = Annotated[ModelServer, Depends(_server)]


def _job_store(request: Request) -> JobStore:
    return request.app.state.job_store


def _runner(request: Request) -> JobRunner:
    return request.app.state.runner


JobStoreDep = Annotated[JobStore, Depends(_job_store)]
RunnerDep = Annotated[JobRunner, Depends(_runner)]


def _documents(request: Request) -> DocumentService:
    return request.app.state.documents


DocumentsDep = Annotated[DocumentService, Depends(_documents)]


def _models(request: Request) -> ModelService:
    return request.app.state.models


def _model_documents(request: Request) -> ModelDocuments:
    return request.app.state.model_documents


def _model_files(request: Request) -> ModelFiles:
    return request.app.state.model_files


ModelsDep = Annotated[ModelService, Depends(_models)]
ModelFilesDep = Annotated[ModelFiles, Depends(_model_files)]
ModelDocumentsDep = Annotated[ModelDocuments, Depends(_model_documents)]


def _chat(request: Request) -> ChatService:
    state = request.app.state
    return ChatService(
        settings=state.settings,
        catalog=state.catalog,
        registry=state.registry,
        server=state.server,
        documents=state.documents,
    )


ChatDep = Annotated[ChatService, Depends(_chat)]


def _job_submissions(request: Request) -> JobSubmissions:
    state = request.app.state
    return JobSubmissions(
        settings=state.settings,
        catalog=state.catalog,
        registry=state.registry,
        documents=state.documents,
        store=state.job_store,
        runner=state.runner,
    )


JobSubmissionsDep = Annotated[JobSubmissions, Depends(_job_submissions)]
