"""Liveness and a short status report; open even when an API key is set."""

from fastapi import APIRouter

from api.deps import CatalogDep, ServerDep, SettingsDep
from api.finetune.device import known_device
from api.serving.cpu import host_cpu

router = APIRouter(tags=["health"])


@router.get("/health")
def read_health(settings: SettingsDep, catalog: CatalogDep, server: ServerDep) -> dict[str, object]:
    """Report the backend, which base models are provisioned, the host's CPU features, and
    the training device: `cuda` (with the GPU names) or `cpu`, and whether QLoRA (bits 4/8)
    can run. The device is probed once per API process in the background; until the probe
    has answered (seconds after start-up) `training.device` is `probing`: a liveness check
    never waits for it."""
    cpu = host_cpu()
    device = known_device()
    training = device.public() if device else {"device": "probing"}
    return {
        "status": "ok",
        "backend": settings.backend,
        "base_models": [b.name for b in catalog.list()],
        "server": server.health(),
        "cpu": {"model": cpu.model, "features": cpu.reported},
        "training": {**training, "require_cuda": settings.require_cuda},
    }
