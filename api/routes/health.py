"""Liveness and a short status report; open even when an API key is set."""

from fastapi import APIRouter

from api.deps import CatalogDep, ServerDep, SettingsDep
from api.serving.cpu import host_cpu

router = APIRouter(tags=["health"])


@router.get("/health")
def read_health(settings: SettingsDep, catalog: CatalogDep, server: ServerDep) -> dict[str, object]:
    """Report the backend, which base models are provisioned, and the host's CPU features."""
    cpu = host_cpu()
    return {
        "status": "ok",
        "backend": settings.backend,
        "base_models": [b.name for b in catalog.list()],
        "server": server.health(),
        "cpu": {"model": cpu.model, "features": cpu.reported},
    }
