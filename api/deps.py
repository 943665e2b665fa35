"""Annotated dependency aliases for routes; the objects are built in main.lifespan."""

from typing import Annotated

from fastapi import Depends, Request

from api.config import Settings
from api.models.catalog import BaseCatalog
from api.models.registry import VariantRegistry
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
