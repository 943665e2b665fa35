"""Fixtures for real components: the provisioned SmolLM2 GGUF served by llama.cpp in-process."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.config import REPO_ROOT, Settings
from api.main import create_app
from api.models.provision import DEFAULT_BASE, provision_smollm2

MODELS_DIR = REPO_ROOT / "shared" / "models"


@pytest.fixture(scope="session")
def base_models_dir() -> Path:
    """The real provisioned base models (provisioned once, shared read-only by all tests)."""
    provision_smollm2(MODELS_DIR, cache_dir=REPO_ROOT / "shared" / "cache", say=lambda _: None)
    return MODELS_DIR


@pytest.fixture
def settings(tmp_path: Path, base_models_dir: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        base_models_dir=base_models_dir,
        threads=2,
        default_base_model=DEFAULT_BASE,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def make_client(base_models_dir: Path, tmp_path: Path) -> Iterator:
    """Build a client with custom settings: make_client(api_key=..., max_tokens_limit=...)."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        values = {
            "data_dir": tmp_path / "data",
            "base_models_dir": base_models_dir,
            "threads": 2,
            **overrides,
        }
        c = TestClient(create_app(Settings(**values)))
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


from tests.utils.browser import browser  # noqa: E402,F401  (one headless Chromium per session)
from tests.utils.postgres import db_target, pg_url, postgres  # noqa: E402,F401  (api/db on both)
from tests.utils.tiny_model import tiny_models_dir  # noqa: E402,F401  (fixture for training tests)
