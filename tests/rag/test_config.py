"""Retrieval settings come from LLM_* variables and are checked at start-up."""

import pytest
from pydantic import ValidationError

from api.config import Settings


def test_retrieval_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LLM_RAG_CHUNK_SIZE", "500")
    monkeypatch.setenv("LLM_RAG_TOP_K", "7")
    monkeypatch.setenv("LLM_CHROMA_URL", "http://chromadb:8000")
    s = Settings()
    assert (s.rag_chunk_size, s.rag_top_k, s.chroma_url) == (500, 7, "http://chromadb:8000")
    assert s.chroma_path == tmp_path.resolve() / "chroma"
    assert s.rag_max_upload_bytes == 25 * 1024 * 1024


@pytest.mark.parametrize(
    "env",
    [
        {"LLM_RAG_CHUNK_SIZE": "200", "LLM_RAG_CHUNK_OVERLAP": "200"},
        {"LLM_RAG_TOP_K": "0"},
        {"LLM_RAG_PARSE_TIMEOUT_S": "0"},
        {"LLM_EMBEDDER": "word2vec"},
    ],
)
def test_invalid_retrieval_settings_are_refused(monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
