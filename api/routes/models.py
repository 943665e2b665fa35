"""Model variants: create, list, delete (seed-compatible paths)."""

from fastapi import APIRouter, Query

from api.deps import ModelsDep
from api.models.schemas import Message, ModelCreate, ModelPublic, ModelsPublic
from api.problems import responses

router = APIRouter(tags=["models"])


@router.post(
    "/createModel", status_code=201, response_model=ModelPublic, responses=responses(404, 409, 503)
)
def create_model(spec: ModelCreate, models: ModelsDep) -> ModelPublic:
    """Create a variant: a base model plus a system prompt and default options."""
    return models.create(spec)


@router.get("/listModels", response_model=ModelsPublic)
def list_models(models: ModelsDep) -> ModelsPublic:
    """List base models and variants."""
    data = models.list()
    return ModelsPublic(data=data, count=len(data))


@router.delete("/deleteModel", response_model=Message, responses=responses(404, 409, 503))
def delete_model(
    models: ModelsDep,
    name: str = Query(..., min_length=1, max_length=200, description="The variant to delete."),
) -> Message:
    """Delete a variant, with its documents and exported model files (409 while a document
    is being imported for it, or while a job uses it or is still producing it)."""
    models.delete(name)
    return Message(message=f"Model {name!r} deleted.")
