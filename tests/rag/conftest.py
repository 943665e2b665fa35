"""Fixtures for retrieval: a real Chroma server on a loopback port, started from the
`chromadb` package and stopped at the end of the session."""

from collections.abc import Iterator

import pytest

from tests.utils.chroma import chroma_server


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url
