"""Create, list, delete and resolve models (bases and variants).

`ModelService` is what the routes use: the base catalogue, the variant registry and the
serving backend together, with the checks that keep a model that something is using.
The functions below it take the three apart, for callers that have only some of them.
"""

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from api.errors import Conflict, InvalidInput, NotFound
from api.jobs.guards import check_no_job_uses, check_not_producing
from api.jobs.store import JobStore
from api.models.catalog import Base, BaseCatalog
from api.models.in_use import ModelUse
from api.models.registry import Variant, VariantRegistry
from api.models.schemas import ModelCreate, ModelPublic
from api.names import check_name
from api.serving.base import LibraryModel, ModelServer, ServedModel


def _base_public(base: Base) -> ModelPublic:
    if isinstance(base, LibraryModel):
        return ModelPublic(
            name=base.name,
            kind="base",
            source="ollama",
            ollama_model=base.ollama_model,
            created_at=base.modified_at,
        )
    return ModelPublic(name=base.name, kind="base", source=base.source, created_at=base.created_at)


def _variant_public(v: Variant) -> ModelPublic:
    return ModelPublic(
        name=v.name,
        kind="variant",
        base_model=v.base_model,
        system_prompt=v.system_prompt,
        template=v.template,
        parameters=v.parameters,
        lineage=v.lineage,
        created_at=v.created_at,
    )


def list_models(
    *, catalog: BaseCatalog, registry: VariantRegistry, server: ModelServer | None = None
) -> list[ModelPublic]:
    """Bases, then variants; with `server`, a model whose GGUF the backend gave up loading
    (backend `llamaserver`: `unavailable()`) says why in `unavailable`."""
    bases, variants = catalog.list(), registry.list()
    public = [_base_public(b) for b in bases] + [_variant_public(v) for v in variants]
    down: dict[Path, str] = getattr(server, "unavailable", dict)()
    if down:
        files = {b.name: b.gguf_path for b in bases if not isinstance(b, LibraryModel)}
        owners: list[Variant | None] = [None] * len(bases)
        for item, variant in zip(public, owners + list(variants), strict=True):
            gguf = files.get(item.base_model or item.name)
            if variant is not None and variant.gguf_path:
                gguf = Path(variant.gguf_path)
            if gguf in down:
                item.unavailable = down[gguf]
    return public


def _require_base(catalog: BaseCatalog, name: str) -> Base:
    base = catalog.get(name)
    if base is None:
        known = ", ".join(b.name for b in catalog.list()) or "none (run load_base_model.py)"
        raise NotFound(f"Base model {name!r} not found. Available base models: {known}.")
    return base


def create_variant(
    *,
    catalog: BaseCatalog,
    registry: VariantRegistry,
    server: ModelServer,
    spec: ModelCreate,
    default_base: str,
) -> ModelPublic:
    name = check_name(spec.name)
    if catalog.get(name) is not None:
        raise Conflict(f"{name!r} is the name of a base model; choose another name.")
    base = _require_base(catalog, spec.base_model or default_base)
    variant = Variant(
        name=name,
        base_model=base.name,
        system_prompt=spec.system_prompt,
        template=spec.template,
        parameters=spec.parameters.set_values(),
    )
    if registry.get(name) is not None:
        raise Conflict(
            f"A model named {name!r} already exists; delete it first or pick another name."
        )
    server.register(served_model(base, variant))
    try:
        return _variant_public(registry.add(variant))
    except Exception:
        server.unregister(name)
        raise


def delete_variant(
    *,
    catalog: BaseCatalog,
    registry: VariantRegistry,
    server: ModelServer,
    name: str,
    artifacts_root: Path | None = None,
) -> None:
    """Delete a variant; files it owns under `artifacts_root` (an export's GGUFs) go too."""
    variant = registry.get(name)
    base = catalog.local(name) if variant is not None else catalog.get(name)
    if isinstance(base, LibraryModel):
        raise Conflict(
            f"{name!r} is Ollama's model {base.ollama_model!r}, not one this API "
            f"created; remove it from Ollama (`ollama rm {base.ollama_model}`)."
        )
    if base is not None:
        raise Conflict(
            f"{name!r} is a base model; base models are removed from "
            "DATA_DIR/models, not through the API."
        )
    if variant is None:
        deletable = ", ".join(v.name for v in registry.list()) or "none"
        raise NotFound(f"Model {name!r} not found. Models you can delete: {deletable}.")
    server.unregister(name)
    registry.remove(name)
    if artifacts_root is not None:
        for owned in filter(None, (variant.gguf_path, variant.adapter_path)):
            directory = Path(owned).resolve().parent
            if directory.is_relative_to(artifacts_root.resolve()):
                shutil.rmtree(directory, ignore_errors=True)


def served_model(base: Base, variant: Variant | None) -> ServedModel:
    if isinstance(base, LibraryModel):
        if variant is None:
            return ServedModel(name=base.name, gguf_path=None, ollama_base=base.ollama_model)
        return ServedModel(
            name=variant.name,
            gguf_path=None,
            ollama_base=base.ollama_model,
            system_prompt=variant.system_prompt,
            template=variant.template,
            options=variant.parameters,
        )
    if variant is None:
        return ServedModel(name=base.name, gguf_path=base.gguf_path, base_name=base.name)
    gguf_path = Path(variant.gguf_path) if variant.gguf_path else base.gguf_path
    return ServedModel(
        name=variant.name,
        gguf_path=gguf_path,
        adapter_path=Path(variant.adapter_path) if variant.adapter_path else None,
        system_prompt=variant.system_prompt,
        template=variant.template,
        options=variant.parameters,
        base_name=base.name if gguf_path == base.gguf_path else None,
    )


def resolve_model(*, catalog: BaseCatalog, registry: VariantRegistry, name: str) -> ServedModel:
    """The served form of a base or variant called `name`; NotFound lists what exists."""
    if not name.strip():
        raise InvalidInput("No model given: set `model` to one of GET /listModels.")
    local = catalog.local(name)  # the common cases first, without asking the backend
    if local is not None:
        return served_model(local, None)
    variant = registry.get(name)
    library = catalog.get(name) if variant is None else None
    if library is not None:
        return served_model(library, None)
    if variant is None:
        known = ", ".join(m.name for m in list_models(catalog=catalog, registry=registry)) or "none"
        raise NotFound(f"Model {name!r} not found. Available models: {known}.")
    return served_model(_require_base(catalog, variant.base_model), variant)


class Dependent(Protocol):
    """Data kept per model elsewhere (a model's documents), removed with the model."""

    def delete_all(self, *, model: str) -> int: ...


class ModelService:
    """Bases and variants as one service: resolve, list, create, delete with cascade."""

    def __init__(
        self,
        *,
        catalog: BaseCatalog,
        registry: VariantRegistry,
        server: ModelServer,
        jobs: JobStore,
        use: ModelUse,
        default_base: str,
        artifacts_root: Path,
        dependents: Sequence[Dependent] = (),
    ):
        self.catalog, self.registry, self.server = catalog, registry, server
        self.jobs, self.use = jobs, use
        self.default_base, self.artifacts_root = default_base, artifacts_root
        self.dependents = dependents

    def resolve(self, name: str) -> ServedModel:
        return resolve_model(catalog=self.catalog, registry=self.registry, name=name)

    def list(self) -> list[ModelPublic]:
        return list_models(catalog=self.catalog, registry=self.registry, server=self.server)

    def create(self, spec: ModelCreate) -> ModelPublic:
        """A variant: a base plus a system prompt and options (not a name a job produces)."""
        check_not_producing(self.jobs, spec.name)
        return create_variant(
            catalog=self.catalog,
            registry=self.registry,
            server=self.server,
            spec=spec,
            default_base=self.default_base,
        )

    def delete(self, name: str) -> None:
        """A variant with its exported files and its dependents' data (409 while an
        operation holds it, or while a job uses it or is still producing it)."""
        with self.use.lock:
            self.use.check_free(name, action="Delete it")
            with self.use.exclusive(name, action="Delete it"):
                if self.catalog.get(name) is None:  # bases are refused below anyway
                    check_no_job_uses(self.jobs, name, action="delete it")
                delete_variant(
                    catalog=self.catalog,
                    registry=self.registry,
                    server=self.server,
                    name=name,
                    artifacts_root=self.artifacts_root,
                )
                for dependent in self.dependents:
                    dependent.delete_all(model=name)

    @contextmanager
    def held(self, name: str, what: str) -> Iterator[str]:
        """Resolve `name` and hold the model for `what` until the block ends: deleting it
        meanwhile answers 409. Yields the model's name."""
        with self.use.lock:
            model = self.resolve(name).name
            self.use.acquire(model, what)
        try:
            with self.use.shared(model):
                self.resolve(name)  # NotFound if another replica deleted it meanwhile
                yield model
        finally:
            self.use.release(model, what)

    @contextmanager
    def free(self, name: str, *, action: str) -> Iterator[str]:
        """Resolve `name`, check that nothing holds it (409 naming what does, `action`
        saying what the caller wanted) and keep it so until the block ends."""
        with self.use.lock:
            model = self.resolve(name).name
            self.use.check_free(model, action=action)
            with self.use.exclusive(model, action=action):
                yield model
