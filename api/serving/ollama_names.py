"""How names cross between the platform and Ollama.

Our own models. The platform's model `hr-bot` is the Ollama model `llmp/hr-bot:latest`
(`ollama_name`); `platform_name` maps back and ignores models outside the `llmp/`
namespace, so models pulled into the same Ollama by hand never collide with ours.

Ollama's library. A model pulled into Ollama (`ollama pull llama3.2:3b`, or the
entrypoint's OLLAMA_BASE_MODEL) is offered as a base under a name that follows our name
rules (api/names.py), made by `library_name`:
- lowercase (Ollama compares names case-insensitively);
- the default registry and namespace are dropped (`registry.ollama.ai/library/x` is `x`);
- a `:latest` tag is dropped, any other tag is joined with `-`: `llama3.2:3b` is
  `llama3.2-3b`, `llama3.2:latest` is `llama3.2`;
- `/` becomes `.`: `hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M` is
  `hf.co.bartowski.llama-3.2-1b-gguf-q4_k_m`.
Our alphabet (`a-z0-9._-`) is smaller than Ollama's, so this function alone cannot be
inverted. It is made unambiguous where it is used: `library_models` leaves out every name
that two Ollama models would share (and names that break our rules, such as those over 63
characters), logging why, and the way back is a lookup in that same listing, never a
guess. Each listed base also shows its Ollama name (`ollama_model` in /listModels).
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from api.names import is_valid_name
from api.serving.base import LibraryModel

log = logging.getLogger(__name__)

NAMESPACE = "llmp"
TAG = "latest"
_DEFAULT_PREFIXES = ("registry.ollama.ai/", "library/")


def ollama_name(name: str) -> str:
    return f"{NAMESPACE}/{name}:{TAG}"


def platform_name(ollama: str) -> str | None:
    prefix, suffix = f"{NAMESPACE}/", f":{TAG}"
    if ollama.startswith(prefix) and ollama.endswith(suffix):
        return ollama[len(prefix) : -len(suffix)]
    return None


def library_name(ollama: str) -> str | None:
    """Our name for an Ollama library model (see the module docstring); None for our own
    `llmp/` models and for names our rules cannot hold."""
    if platform_name(ollama) is not None:
        return None
    name = ollama.strip().lower()
    for prefix in _DEFAULT_PREFIXES:
        name = name.removeprefix(prefix)
    path, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    if tag and tag != TAG:
        path = f"{path}-{tag}"
    mapped = path.replace(":", "-").replace("/", ".")  # a ':' left here is a registry's port
    return mapped if is_valid_name(mapped) else None


def library_models(entries: Iterable[Any]) -> list[LibraryModel]:
    """Bases for the entries of Ollama's /api/tags, without our own models and without
    any name that would be ambiguous."""
    by_name: dict[str, list[Any]] = defaultdict(list)
    for entry in entries:
        original = entry.model or ""
        if platform_name(original) is not None:
            continue
        mapped = library_name(original)
        if mapped is None:
            log.warning(
                "Ollama model %r is not offered as a base: its name cannot follow our "
                "name rules; `ollama cp` it to a shorter lowercase name",
                original,
            )
            continue
        by_name[mapped].append(entry)
    found = []
    for mapped, same in sorted(by_name.items()):
        if len(same) > 1:
            log.warning(
                "Ollama models %s would all be the base %r, so none is offered; "
                "`ollama cp` one to another name",
                sorted(e.model for e in same),
                mapped,
            )
            continue
        entry = same[0]
        details = entry.details
        found.append(
            LibraryModel(
                name=mapped,
                ollama_model=entry.model,
                modified_at=_iso(entry.modified_at),
                family=getattr(details, "family", None),
                parameter_size=getattr(details, "parameter_size", None),
                quantization=getattr(details, "quantization_level", None),
            )
        )
    return found


def _iso(value: datetime | str | None) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value or ""
