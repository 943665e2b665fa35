"""The ModelServer protocol: what every serving backend (llama.cpp, Ollama) provides."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class ServedModel:
    """Everything a backend needs to answer as one model (a base or a variant).

    A model from Ollama's own library has no GGUF of ours: `gguf_path` is None and
    `ollama_base` names the Ollama model it is (a base: `name` is that model's library name,
    api/serving/ollama_names.py) or is built on (a variant: any other name).
    `base_name` names the provisioned base whose GGUF `gguf_path` is (None for an exported
    GGUF of its own): a backend that imports models (Ollama) imports that base once and
    builds its variants on it.
    """

    name: str
    gguf_path: Path | None
    adapter_path: Path | None = None
    system_prompt: str | None = None
    template: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    ollama_base: str | None = None
    base_name: str | None = None


@dataclass(frozen=True)
class LibraryModel:
    """A model the serving backend has that this API did not create (Ollama's library)."""

    name: str  # our name for it (api/serving/ollama_names.py)
    ollama_model: str  # its name in Ollama, e.g. llama3.2:3b
    modified_at: str = ""
    family: str | None = None
    parameter_size: str | None = None
    quantization: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A piece of a reply. The last chunk has `finish_reason` and the token counts."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ModelServer(Protocol):
    def chat(
        self, model: ServedModel, messages: list[dict[str, str]], options: dict[str, Any]
    ) -> Iterator[Chunk]:
        """Stream a reply to `messages`; raises InvalidInput for a prompt that cannot fit."""
        ...

    def register(self, model: ServedModel) -> None:
        """Make `model` servable (check its files, create it in the backend)."""
        ...

    def unregister(self, name: str) -> None:
        """Forget a model; unknown names are ignored."""
        ...

    def library_models(self) -> list[LibraryModel]:
        """Models the backend offers that this API did not create (empty for llama.cpp);
        raises Unavailable when the backend cannot be asked."""
        ...

    def unload_all(self) -> list[str]:
        """Drop every loaded model from memory (before a GPU job); returns their names."""
        ...

    def health(self) -> dict[str, Any]:
        """A small status report for GET /health."""
        ...

    def close(self) -> None:
        """Release loaded models and connections."""
        ...
