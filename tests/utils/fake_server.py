"""FakeServer: a ModelServer (api/serving/base.py) that replies from a script, for fast route
tests of error paths and stream formats. It loads nothing: use it where the test is about how
the API frames a reply or a failure, and the real llama.cpp or Ollama-double tests where it is
about what a model does.

    fake = FakeServer(reply=["Ahoy", " there"], fail_after=1)
    with fake_app(tmp_path, monkeypatch, fake) as client: ...

`fail_after=n` raises `error` after n chunks (0: before the first, which the API reports as
an HTTP status); every chat is recorded in `chats` as (model name, messages, options).
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.errors import AppError, Unavailable
from api.main import create_app
from api.serving.base import Chunk, LibraryModel, ModelServer, ServedModel
from tests.utils.ollama_double import make_base


@dataclass
class FakeServer:
    reply: list[str] = field(default_factory=lambda: ["Ahoy", " there", " matey"])
    finish_reason: str = "stop"
    fail_after: int | None = None
    prompt_tokens: int | None = None  # reported on the last chunk; default: messages sent
    error: AppError = field(
        default_factory=lambda: Unavailable(
            "The model server stopped answering mid-reply; try again."
        )
    )
    library: list[LibraryModel] = field(default_factory=list)
    chats: list[tuple[str, list[dict[str, str]], dict[str, Any]]] = field(default_factory=list)
    registered: dict[str, ServedModel] = field(default_factory=dict)
    closed: bool = False

    def chat(
        self, model: ServedModel, messages: list[dict[str, str]], options: dict[str, Any]
    ) -> Iterator[Chunk]:
        self.chats.append((model.name, messages, options))
        return self._chunks()

    def _chunks(self) -> Iterator[Chunk]:
        for i, text in enumerate(self.reply):
            if self.fail_after == i:
                raise self.error
            yield Chunk(text=text)
        if self.fail_after is not None and self.fail_after >= len(self.reply):
            raise self.error
        yield Chunk(
            text="",
            finish_reason=self.finish_reason,
            prompt_tokens=(
                len(self.chats[-1][1]) if self.prompt_tokens is None else self.prompt_tokens
            ),
            completion_tokens=len(self.reply),
        )

    def register(self, model: ServedModel) -> None:
        self.registered[model.name] = model

    def unregister(self, name: str) -> None:
        self.registered.pop(name, None)

    def library_models(self) -> list[LibraryModel]:
        return list(self.library)

    def unload_all(self) -> list[str]:
        return []

    def health(self) -> dict[str, Any]:
        return {"fake": True, "registered": sorted(self.registered)}

    def close(self) -> None:
        self.closed = True


def _is_a_model_server(server: FakeServer) -> ModelServer:
    return server  # mypy checks FakeServer against the protocol here


def fake_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeServer, **overrides: object
) -> TestClient:
    """The whole app with `server` as its serving backend and one provisioned base, `tiny`
    (a fake GGUF file: nothing ever opens it). Use it as a context manager."""
    make_base(tmp_path / "models", "tiny")
    monkeypatch.setattr("api.main.build_server", lambda settings: server)
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "default_base_model": "tiny",
        "base_models_dir": tmp_path / "models",
        **overrides,
    }
    return TestClient(create_app(Settings(**values)))
