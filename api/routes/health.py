"""Liveness and a short status report; open even when an API key is set."""

from fastapi import APIRouter

from api.deps import CatalogDep, ServerDep, SettingsDep
from api.finetune.device import training_device

router = APIRouter(tags=["health"])


@router.get("/health")
def read_health(settings: SettingsDep, catalog: CatalogDep, server: ServerDep) -> dict[str, object]:
    """Report the backend, which base models are provisioned, and the training device:
    `cuda` (with the GPU names) or `cpu`, and whether QLoRA (bits 4/8) can run. The device
    is probed once per API process (the first call after start-up may wait for it)."""
    return {
        "status": "ok",
        "backend": settings.backend,
        "base_models": [b.name for b in catalog.list()],
        "server": server.health(),
        "training": {**training_device().public(), "require_cuda": settings.require_cuda},
    }
