"""Bases from the serving backend's own library (Ollama models pulled by the operator).

Which name wins when two things share one: a provisioned base (BaseCatalog), then a variant
(it was ours first: the model was pulled after the variant was created), then a library
model. Names two library models would share are left out earlier (ollama_names.py).
"""

from collections.abc import Callable

from api.models.registry import VariantRegistry
from api.serving.base import LibraryModel, ModelServer


def library_source(
    server: ModelServer, registry: VariantRegistry
) -> Callable[[], list[LibraryModel]]:
    """The catalogue's view of `server`'s library, without names our variants hold."""

    def models() -> list[LibraryModel]:
        found = server.library_models()
        if not found:
            return []
        taken = {v.name for v in registry.list()}
        return [m for m in found if m.name not in taken]

    return models
