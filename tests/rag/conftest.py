"""Fixtures for retrieval: a real Chroma server on a loopback port, started from the
`chromadb` package and stopped at the end of the session."""

import subprocess
from collections.abc import Iterator

import pytest

from tests.utils.chroma import start_chroma_server


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_chroma_server(tmp_path_factory.mktemp("chroma-server"))
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
