"""Fixtures for the serving tests: the Ollama protocol double on a loopback port."""

from collections.abc import Iterator

import pytest

from tests.serving.ollama_double import OllamaDouble


@pytest.fixture
def double() -> Iterator[OllamaDouble]:
    d = OllamaDouble().start()
    yield d
    d.stop()
