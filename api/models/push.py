"""POST /models/{name}/push: upload a model's files and a model card to a Hugging Face Hub repo.

A `push` job, run in the API process: create the repo (`exist_ok`), then one commit with the
chosen files and README.md. The token is read only from HF_TOKEN in the server's environment
(never from a request, never stored with the job); the Hub is LLM_HF_ENDPOINT, else the
environment's HF_ENDPOINT, else https://huggingface.co, passed to HfApi explicitly.
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub import CommitOperationAdd, HfApi, constants
from huggingface_hub.errors import HfHubHTTPError
from pydantic import BaseModel, ConfigDict, Field

from api.config import Settings
from api.errors import AppError, Conflict, InvalidInput
from api.jobs.enqueue import enqueue
from api.jobs.runner import JobRunner
from api.jobs.store import Job, JobStore
from api.models.card import PLATFORM, model_card
from api.models.files import ModelFiles
from api.models.registry import VariantRegistry

REPO_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
DEFAULT_HUB = "https://huggingface.co"


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repo_id: str = Field(
        ...,
        pattern=REPO_ID,
        description="The Hub repo, `owner/name` (letters, digits, `.`, `_`, `-`).",
        examples=["my-org/smollm2-pirate"],
    )
    private: bool = Field(
        True, description="Create the repo private (an existing one keeps its visibility)."
    )
    files: list[str] | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="Paths from GET /models/{name}/files; default: the served GGUF and the "
        "PEFT adapter when there is one.",
    )


class PushFailed(AppError):
    status_code = 502
    title = "Bad Gateway"


def hub_token() -> str | None:
    return (os.environ.get("HF_TOKEN") or "").strip() or None


def hub_endpoint(settings: Settings) -> str:
    return (settings.hf_endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_HUB).rstrip("/")


def _no_token() -> Conflict:
    return Conflict(
        "Pushing to the Hub needs a token: set HF_TOKEN (a write token) in the server's "
        "environment and restart it; a request never carries the token."
    )


def _served(root: Path, registry: VariantRegistry, name: str) -> str | None:
    variant = registry.get(name)
    if variant is None or not variant.gguf_path:
        return None
    path = Path(variant.gguf_path).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else None


def choose_files(
    files: ModelFiles, registry: VariantRegistry, name: str, wanted: list[str] | None
) -> list[str]:
    """The relative paths to push (NotFound for an unknown model, 422 for unknown files)."""
    root, found = files.paths(name)
    kinds = {rel: kind for kind, rel, _ in found}
    if wanted:
        unknown = [w for w in wanted if w not in kinds]
        if unknown:
            raise InvalidInput(
                f"{name!r} has no file {unknown[0][:200]!r}; choose from: "
                f"{', '.join(kinds) or 'none'} (GET /models/{name}/files)."
            )
        return list(dict.fromkeys(wanted))
    served = _served(root, registry, name)
    chosen = [served] if served in kinds else []
    if not chosen and registry.get(name) is None:  # a base: its GGUF
        chosen = [rel for rel, kind in kinds.items() if kind == "gguf"][:1]
    chosen += [rel for rel, kind in kinds.items() if kind == "peft_adapter"]
    if not chosen:
        raise InvalidInput(f"{name!r} has no GGUF or adapter to push; name `files` to push.")
    return [c for c in chosen if c is not None]


def submit_push(
    *,
    settings: Settings,
    files: ModelFiles,
    registry: VariantRegistry,
    store: JobStore,
    runner: JobRunner,
    name: str,
    request: PushRequest,
) -> Job:
    if hub_token() is None:
        raise _no_token()
    if constants.is_offline_mode():
        raise Conflict(
            "The server runs with HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set, which blocks "
            "every Hub call: unset it in the server's environment and restart to push."
        )
    chosen = choose_files(files, registry, name, request.files)
    root, _ = files.paths(name)
    source = store.get(root.name) if root.parent == settings.jobs_dir.resolve() else None
    resolved = {
        "model": name,
        "repo_id": request.repo_id,
        "private": request.private,
        "files": chosen,
        "endpoint": hub_endpoint(settings),
        "source_job": source.id if source else None,
    }
    job = store.create(
        model_name=name, base_model=name, spec=resolved, jobs_dir=settings.jobs_dir, kind="push"
    )
    enqueue(
        store,
        runner,
        job,
        resolved,
        lambda: store.set_progress(job.id, {"files": len(chosen), "uploaded": 0}),
        f"{len(chosen)} files of {name!r} to push to {request.repo_id}; the job is queued.",
    )
    return store.get(job.id) or job


def _hub_error(endpoint: str, exc: Exception) -> PushFailed:
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        message = exc.server_message or str(exc).splitlines()[0]
        return PushFailed(
            f"The Hub at {endpoint} refused the push: HTTP {exc.response.status_code}: "
            f"{message.strip()[:500]}"
        )
    if isinstance(exc, (httpx.HTTPError, OSError)):
        return PushFailed(f"The Hub at {endpoint} could not be reached: {exc}"[:600])
    return PushFailed(
        f"The Hub at {endpoint} gave an answer this server cannot read: "
        f"{type(exc).__name__}: {exc}"[:600]
    )


def push_step(
    *, files: ModelFiles, store: JobStore
) -> Callable[[Job, Callable[[], bool]], dict[str, Any]]:
    """The runner's in-process step for `push` jobs."""

    def step(job: Job, should_stop: Callable[[], bool]) -> dict[str, Any]:
        spec = job.spec
        token = hub_token()
        if token is None:
            raise _no_token()
        root, found = files.paths(spec["model"])
        by_rel = {rel: path for _, rel, path in found}
        gone = [rel for rel in spec["files"] if rel not in by_rel]
        if gone:
            raise InvalidInput(f"{spec['model']!r} no longer has {', '.join(gone)}.")
        listed = [
            (rel, by_rel[rel].stat().st_size, files.hashes.sha256(by_rel[rel]))
            for rel in spec["files"]
        ]
        source = store.get(spec["source_job"]) if spec.get("source_job") else None
        card = model_card(
            model=spec["model"],
            repo_id=spec["repo_id"],
            files=listed,
            spec=source.spec if source else None,
            metrics=source.metrics if source else None,
        )
        endpoint = spec["endpoint"]
        api = HfApi(endpoint=endpoint, token=token, library_name=PLATFORM)
        try:
            url = api.create_repo(
                spec["repo_id"], private=spec["private"], exist_ok=True, repo_type="model"
            )
            store.add_event(job.id, "push", f"Repository {spec['repo_id']} is ready: {url}")
            if should_stop():
                return {"report": "Cancelled before uploading."}
            operations = [
                CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(by_rel[rel]))
                for rel in spec["files"]
            ]
            operations.append(CommitOperationAdd("README.md", card.encode()))
            commit = api.create_commit(
                spec["repo_id"],
                operations=operations,
                commit_message=f"Upload {spec['model']} from {PLATFORM}",
                repo_type="model",
            )
        except Exception as exc:  # HfHubHTTPError, httpx errors, an unexpected reply
            raise _hub_error(endpoint, exc) from exc
        size = sum(s for _, s, _ in listed)
        store.set_progress(job.id, {"files": len(listed), "uploaded": len(listed)})
        return {
            "repo_id": spec["repo_id"],
            "url": str(url),
            "commit": commit.oid,
            "commit_url": commit.commit_url,
            "files": [rel for rel, _, _ in listed] + ["README.md"],
            "bytes": size,
            "private": spec["private"],
            "report": f"Pushed {len(listed)} files ({size} bytes) and a model card to "
            f"{spec['repo_id']}.",
        }

    return step
