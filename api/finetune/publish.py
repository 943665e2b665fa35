"""Register an exported model with the serving backend, after a smoke test.

Runs in the API process (it owns the ModelServer and the registry). The model is
registered, asked one question from the job's validation rows, and must stop on its own
before `LLM_EXPORT_SMOKE_MAX_TOKENS`: a wrong chat template or a lost EOS token shows up
as a reply that never ends. Only then is it added to the registry; on any failure the
backend registration is undone, so no half-registered model remains.
"""

import json
from typing import Any

from api.config import Settings
from api.errors import AppError, Conflict
from api.finetune.formats import served_template
from api.finetune.lengths import CHATML_TEMPLATE, chat_template
from api.finetune.lineage import lineage_of
from api.generation import collect, with_system_prompt
from api.jobs.layout import JobFiles
from api.jobs.store import Job
from api.models.catalog import BaseCatalog
from api.models.registry import Variant, VariantRegistry
from api.models.service import served_model
from api.serving.base import ModelServer


class SmokeTestFailed(Exception):
    """The exported model does not answer properly."""


def _smoke_prompt(files: JobFiles) -> list[dict[str, str]]:
    for name in ("validation", "test", "train"):
        path = files.data_file(name)
        if path.is_file() and path.read_text().strip():
            return json.loads(path.read_text().splitlines()[0])[:-1]
    return [{"role": "user", "content": "Hello!"}]


def publish(
    job: Job,
    *,
    settings: Settings,
    catalog: BaseCatalog,
    registry: VariantRegistry,
    server: ModelServer,
) -> dict[str, Any]:
    """Register the job's export under job.model_name; returns what the job should show."""
    export_dir = job.files.export
    result = json.loads(job.files.result.read_text())
    name = job.model_name
    serve = result["serve"]
    base = catalog.get(job.base_model)
    hf_dir = getattr(base, "hf_path", None)
    variant = Variant(
        name=name,
        base_model=job.base_model,
        system_prompt=job.spec.get("system_prompt"),
        template=served_template(
            job.spec, chat_template(hf_dir) if hf_dir else CHATML_TEMPLATE, settings.backend
        ),
        gguf_path=str(export_dir / serve["gguf"]) if "gguf" in serve else None,
        adapter_path=str(export_dir / serve["adapter"]) if "adapter" in serve else None,
        lineage=lineage_of(job),
    )
    existing = registry.get(name)
    # registered by this very job before the API was killed (the export then ran again
    # and rewrote the same files): checked and kept, not refused as somebody else's name
    ours = existing is not None and (
        existing.base_model,
        existing.gguf_path,
        existing.adapter_path,
    ) == (variant.base_model, variant.gguf_path, variant.adapter_path)
    if (existing is not None and not ours) or catalog.get(name) is not None:
        raise Conflict(
            f"A model named {name!r} was created while the job ran; export again "
            "with another model_name (POST /jobs/{id}/export)."
        )
    base = catalog.get(job.base_model)
    if base is None:
        raise AppError(f"Base model {job.base_model!r} disappeared during the job.")
    model = served_model(base, variant)
    server.register(model)
    try:
        limit = settings.export_smoke_max_tokens
        chunks = server.chat(
            model,
            with_system_prompt(model, _smoke_prompt(job.files)),
            {"temperature": 0.0, "max_tokens": limit, "seed": 0},
        )
        text, last = collect(chunks)
        if last.finish_reason != "stop":
            raise SmokeTestFailed(
                f"Smoke test failed: the model did not stop within {limit} tokens, so its chat "
                "template or end-of-turn token is probably wrong. Reply began: "
                f"{text[:200]!r}"
            )
        if not text.strip():
            raise SmokeTestFailed("Smoke test failed: the model answered with nothing.")
        if not ours:
            registry.add(variant)  # only a model that answered becomes visible
    except BaseException:
        server.unregister(name)
        if ours:
            registry.remove(name)  # its files go with the failed export
        raise
    files = {k: str(export_dir / v) for k, v in result["files"].items()}
    return {
        "export": {
            **result,
            "files": files,
            "smoke_reply": text[:500],
            "disk_bytes": sum(result["sizes"].values()),
        }
    }
