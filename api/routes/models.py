"""Model variants: create, list, delete (seed-compatible paths)."""

from fastapi import APIRouter, Query

from api.deps import (CatalogDep, DocumentsDep, JobStoreDep, ModelUseDep, RegistryDep,
                      ServerDep, SettingsDep)
from api.errors import Conflict
from api.jobs.store import ACTIVE
from api.models import service
from api.models.in_use import check_no_job_uses
from api.models.schemas import Message, ModelCreate, ModelPublic, ModelsPublic
from api.problems import responses

router = APIRouter(tags=["models"])


@router.post("/createModel", status_code=201, response_model=ModelPublic,
             responses=responses(404, 409, 503))
def create_model(
    spec: ModelCreate, settings: SettingsDep, catalog: CatalogDep, registry: RegistryDep,
    server: ServerDep, store: JobStoreDep,
) -> ModelPublic:
    """Create a variant: a base model plus a system prompt and default options."""
    if any(j.model_name == spec.name for j in store.list(states=ACTIVE, limit=10_000)):
        raise Conflict(f"A fine-tuning job is producing a model named {spec.name!r}; choose "
                       "another name.")
    return service.create_variant(
        catalog=catalog, registry=registry, server=server, spec=spec,
        default_base=settings.default_base_model,
    )


@router.get("/listModels", response_model=ModelsPublic)
def list_models(catalog: CatalogDep, registry: RegistryDep) -> ModelsPublic:
    """List base models and variants."""
    models = service.list_models(catalog=catalog, registry=registry)
    return ModelsPublic(data=models, count=len(models))


@router.delete("/deleteModel", response_model=Message, responses=responses(404, 409, 503))
def delete_model(
    settings: SettingsDep, catalog: CatalogDep, registry: RegistryDep, server: ServerDep,
    documents: DocumentsDep, store: JobStoreDep, use: ModelUseDep,
    name: str = Query(..., min_length=1, max_length=200, description="The variant to delete."),
) -> Message:
    """Delete a variant, with its documents and exported model files (409 while a document
    is being imported for it, or while a job uses it or is still producing it)."""
    with use.lock:
        use.check_free(name, action="Delete it")
        if catalog.get(name) is None:  # bases are refused below anyway
            check_no_job_uses(store, name, action="delete it")
        service.delete_variant(catalog=catalog, registry=registry, server=server, name=name,
                               artifacts_root=settings.jobs_dir)
        documents.delete_all(model=name)
    return Message(message=f"Model {name!r} deleted.")
