"""The platform wired to the Ollama protocol double: the Ollama backend alone, or the whole app
with LLM_BACKEND=ollama (tests/utils/ollama_double.py is the double)."""

from pathlib import Path

from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from api.serving.ollama import OllamaServer
from tests.utils.ollama_double import make_base


def make_server(url: str, tmp_path: Path, **overrides: object) -> OllamaServer:
    values = {
        "data_dir": tmp_path / "data",
        "base_models_dir": tmp_path / "models",
        "backend": "ollama",
        "ollama_url": url,
        "ollama_retries": 0,
        **overrides,
    }
    return OllamaServer(Settings(**values), backoff=0.05)


def app_client(tmp_path: Path, url: str) -> TestClient:
    make_base(tmp_path / "models", "tiny")
    settings = Settings(
        data_dir=tmp_path / "data",
        base_models_dir=tmp_path / "models",
        backend="ollama",
        ollama_url=url,
        ollama_retries=0,
        default_base_model="tiny",
    )
    return TestClient(create_app(settings))
