"""One Settings class, read from `LLM_*` environment variables (or `.env`) and validated at start-up."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LLM_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    data_dir: Path = Field(
        REPO_ROOT / "shared",
        description="The shared volume: registry, base models, adapters, GGUF files.",
    )
    base_models_dir: Path | None = Field(
        None, description="Where provisioned base models live; defaults to DATA_DIR/models."
    )
    api_key: SecretStr | None = Field(
        None,
        description="When set, every route except /health needs `Authorization: Bearer <key>`.",
    )
    backend: Literal["llamacpp", "ollama"] = Field(
        "llamacpp",
        description="Serving backend: `llamacpp` (embedded, in-process) or `ollama` (a server).",
    )
    ollama_url: str = Field(
        "http://127.0.0.1:11434",
        pattern=r"^https?://[^\s/]+(:\d+)?/?$",
        description="Base URL of the Ollama server (backend `ollama`), e.g. http://ollama:11434.",
    )
    ollama_timeout: float = Field(
        300.0, gt=0, le=3600,
        description="Seconds to wait for Ollama's next bytes (loading a big model takes minutes).",
    )
    ollama_connect_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds to wait for a connection to Ollama."
    )
    ollama_retries: int = Field(
        2, ge=0, le=10,
        description="Retries, with backoff, when Ollama cannot be reached (idempotent calls only).",
    )
    default_base_model: str = Field(
        "smollm2-135m", description="Base model used when a request names none."
    )
    context_length: int = Field(
        2048, ge=256, le=131072, description="Context window (tokens) given to loaded models."
    )
    max_tokens_limit: int = Field(
        2048, ge=1, description="Largest `max_tokens` a request may ask for."
    )
    max_prompt_chars: int = Field(
        32_000, ge=1, description="Longest prompt or message text accepted, in characters."
    )
    max_loaded_models: int = Field(
        2, ge=1, le=16, description="How many GGUF models the embedded server keeps loaded."
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads for llama.cpp; defaults to the core count."
    )

    @model_validator(mode="after")
    def _resolve_paths(self) -> "Settings":
        self.data_dir = self.data_dir.resolve()
        if self.base_models_dir is None:
            self.base_models_dir = self.data_dir / "models"
        self.base_models_dir = self.base_models_dir.resolve()
        if self.api_key is not None and len(self.api_key.get_secret_value()) < 16:
            raise ValueError("LLM_API_KEY must be at least 16 characters long")
        return self

    @property
    def models_dir(self) -> Path:
        assert self.base_models_dir is not None
        return self.base_models_dir

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.sqlite"


@lru_cache
def get_settings() -> Settings:
    return Settings()
