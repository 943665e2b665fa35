"""Fixtures for the serving tests: the Ollama protocol double on a loopback port, a
provisioned fake base, and the Ollama backend pointed at the double."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.serving.ollama import OllamaServer
from tests.utils.ollama_app import make_server
from tests.utils.ollama_double import OllamaDouble, make_base


@pytest.fixture
def double() -> Iterator[OllamaDouble]:
    d = OllamaDouble().start()
    yield d
    d.stop()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def base_gguf(models_dir: Path) -> Path:
    return make_base(models_dir, "tiny")


@pytest.fixture
def server(double: OllamaDouble, tmp_path: Path) -> Iterator[OllamaServer]:
    s = make_server(double.url, tmp_path)
    yield s
    s.close()
