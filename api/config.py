"""One Settings class, read from `LLM_*` environment variables (or `.env`) and validated at start-up."""

import socket
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
    backend: Literal["llamacpp", "llamaserver", "ollama"] = Field(
        "llamaserver",
        description="Serving backend: `llamaserver` (llama.cpp's llama-server, one child "
        "process per loaded model), `llamacpp` (embedded: llama.cpp inside the API process, "
        "through llama-cpp-python) or `ollama` (a server).",
    )
    ollama_url: str = Field(
        "http://127.0.0.1:11434",
        pattern=r"^https?://[^\s/]+(:\d+)?/?$",
        description="Base URL of the Ollama server (backend `ollama`), e.g. http://ollama:11434.",
    )
    ollama_timeout: float = Field(
        300.0,
        gt=0,
        le=3600,
        description="Seconds to wait for Ollama's next bytes (loading a big model takes minutes).",
    )
    ollama_connect_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds to wait for a connection to Ollama."
    )
    ollama_retries: int = Field(
        2,
        ge=0,
        le=10,
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
        2,
        ge=1,
        le=16,
        description="How many GGUF models the llamacpp/llamaserver backends keep loaded "
        "(llamaserver: running children); the least recently used one is dropped first.",
    )
    parallel: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Backend `llamaserver`: parallel slots per model (requests decoded "
        "together, each with the full context window); defaults to the core count, at most 4.",
    )
    llama_server_path: Path = Field(
        REPO_ROOT / "llama.cpp" / "bin" / "llama-server",
        description="Backend `llamaserver`: the llama-server binary (`make setup` builds it).",
    )
    llama_server_start_timeout: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="Backend `llamaserver`: seconds a child may take to load its model.",
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads for llama.cpp; defaults to the core count."
    )
    llamacpp_extra_buffers: Literal["auto", "on", "off"] = Field(
        "auto",
        description="llama.cpp's extra buffer types (weight repacking, AMX): `auto` turns them "
        "off on CPUs where llama.cpp is known to crash with them (AMX: Sapphire "
        "Rapids and later) and on elsewhere; `on`/`off` override. /health shows "
        "the choice.",
    )
    # retrieval (api/rag)
    chroma_url: str | None = Field(
        None,
        description="Chroma server URL (e.g. http://chromadb:8000); unset = embedded "
        "Chroma on disk at CHROMA_PATH.",
    )
    chroma_path: Path | None = Field(
        None, description="Directory of the embedded Chroma store; defaults to DATA_DIR/chroma."
    )
    embedder: Literal["minilm"] = Field(
        "minilm", description="Embedding model: `minilm` (all-MiniLM-L6-v2, offline)."
    )
    embed_batch_size: int = Field(64, ge=1, le=1024, description="Chunks embedded per batch.")
    rag_chunk_size: int = Field(
        1000,
        ge=100,
        le=20_000,
        description="Characters per chunk (RecursiveCharacterTextSplitter).",
    )
    rag_chunk_overlap: int = Field(
        150, ge=0, le=5_000, description="Characters shared by neighbouring chunks."
    )
    rag_top_k: int = Field(
        4,
        ge=1,
        le=50,
        description="Passages retrieved per query (the question and each "
        "alternative query); the deduplicated union is used.",
    )
    rag_alternative_queries: int = Field(
        3,
        ge=0,
        le=8,
        description="Alternative queries the model writes (MultiQueryRetriever); "
        "0 searches with the question only.",
    )
    rag_multi_query: Literal["always", "adaptive", "never"] = Field(
        "always",
        description="When the model writes alternative queries: `always`, `never`, or "
        "`adaptive` (only when the question's own best passage is further than "
        "`rag_adaptive_distance`). Alternatives are cached per model and question.",
    )
    rag_adaptive_distance: float = Field(
        0.45,
        ge=0.0,
        le=2.0,
        description="Cosine distance of the question's best passage above which `adaptive` "
        "multi-query asks the model for alternatives.",
    )
    rag_max_upload_bytes: int = Field(
        25 * 1024 * 1024, ge=1024, description="Largest PDF upload accepted (bytes); over it: 413."
    )
    rag_max_pages: int = Field(1000, ge=1, description="Most pages read from one PDF.")
    rag_max_chars: int = Field(
        2_000_000, ge=1000, description="Most characters of text taken from one PDF."
    )
    rag_parse_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="Wall-clock limit for parsing one PDF (child process)."
    )
    rag_parse_memory_mb: int = Field(
        1024,
        ge=128,
        description="Address space the PDF parsing child process may use for one PDF, on top of "
        "what its libraries take at start-up (MiB).",
    )

    # fine-tuning jobs (api/finetune, api/jobs)
    max_dataset_bytes: int = Field(
        50 * 1024 * 1024, ge=1024, description="Largest training or eval file accepted (bytes)."
    )
    max_dataset_rows: int = Field(100_000, ge=1, description="Most rows in one training file.")
    export_smoke_max_tokens: int = Field(
        256,
        ge=8,
        le=4096,
        description="An exported model must stop on its own within this "
        "many tokens when asked one validation question.",
    )
    require_cuda: bool = Field(
        False,
        description="Refuse to start, and fail jobs, when torch sees no CUDA GPU, "
        "instead of training on the CPU (set it on GPU hosts, where a driver, "
        "image and torch that disagree would otherwise go unnoticed).",
    )
    job_poll_seconds: float = Field(
        0.5, gt=0, le=60, description="How often the job runner and event streams poll."
    )
    job_executor: Literal["local", "ray"] = Field(
        "local",
        description="Where training and export steps run: `local` (child processes of the "
        "API, one training job at a time) or `ray` (an actor per step on a Ray cluster, as "
        "many at once as its GPUs allow; needs `pip install -e '.[cluster]'`). See "
        "docs/ray.md.",
    )
    job_cpu_priority: Literal["idle", "normal"] = Field(
        "idle",
        description="Job steps that work on the CPU (training without a GPU, evaluation, "
        "export) run at `idle` priority (Linux SCHED_IDLE: they take only the CPU time "
        "serving leaves, so replies keep their speed while a job runs) or `normal` (jobs "
        "and serving share the cores equally). Training on a GPU always runs at normal "
        "priority. See docs/serving.md.",
    )
    ray_address: str = Field(
        "local",
        pattern=r"^(local|auto|[A-Za-z0-9.\-]+:\d{1,5})$",
        description="Executor `ray`: `local` starts a private Ray instance in the API process "
        "(this host's GPUs only); `auto` joins the cluster `ray start` runs on this host; "
        "`HOST:PORT` joins the head node at that address (its GCS port, 6379 by default).",
    )
    ray_step_cpus: float = Field(
        1.0, gt=0, le=256, description="Executor `ray`: CPUs reserved for each step."
    )
    ray_step_memory_gb: float | None = Field(
        None,
        gt=0,
        le=4096,
        description="Executor `ray`: memory (GB) reserved for each step; unset reserves none.",
    )
    ray_max_jobs: int = Field(
        16,
        ge=1,
        le=1000,
        description="Executor `ray`: jobs this API hands to Ray at once (running or waiting "
        "for resources); the rest stay queued here.",
    )
    ray_node_retries: int = Field(
        2,
        ge=0,
        le=20,
        description="Executor `ray`: times a step runs again on another node after its node "
        "is lost (from the job's last checkpoint).",
    )

    # the shared store and API replicas (api/db)
    database_url: SecretStr | None = Field(
        None,
        description="A PostgreSQL URL (`postgresql+psycopg://user:password@host:5432/db`) that "
        "the job store, model registry and document catalogue share, so that several API "
        "replicas (over one shared data dir) can run. Unset: each store is a SQLite file in "
        "the data dir (one API process).",
    )
    replica_id: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="This API replica's name, recorded as the owner of the jobs it runs and "
        "the uploads it receives; defaults to the hostname. Give each replica on one host "
        "its own.",
    )
    job_lease_seconds: float = Field(
        30.0,
        ge=2,
        le=3600,
        description="How long a running job stays this replica's without a heartbeat; "
        "after that another replica may take it over (resume or fail it).",
    )
    job_heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        le=600,
        description="How often the runner renews its jobs' leases and checks whether "
        "another replica cancelled one of them (must be below LLM_JOB_LEASE_SECONDS).",
    )

    # dataset generation (api/datasets)
    teacher_base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint (e.g. https://host/v1) a dataset job may "
        "use as its teacher with `teacher: openai:<model>`.",
    )
    teacher_api_key: SecretStr | None = Field(
        None, description="Bearer key for LLM_TEACHER_BASE_URL; never stored with a job."
    )
    teacher_timeout: float = Field(
        120.0, gt=0, le=3600, description="Seconds one teacher call may take."
    )
    max_dataset_target: int = Field(
        1000, ge=1, le=100_000, description="Most pairs one dataset job may be asked for."
    )
    max_seed_rows: int = Field(500, ge=1, description="Most seed tasks in one seed file.")

    # pushing models to a Hugging Face Hub (api/models/push.py); the token is HF_TOKEN
    hf_endpoint: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$",
        description="The Hub that POST /models/{name}/push uploads to; defaults to the "
        "environment's HF_ENDPOINT, else https://huggingface.co. The token is read only from "
        "HF_TOKEN in the server's environment.",
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

    @model_validator(mode="after")
    def _check_jobs(self) -> "Settings":
        if self.job_heartbeat_seconds >= self.job_lease_seconds:
            raise ValueError("LLM_JOB_HEARTBEAT_SECONDS must be below LLM_JOB_LEASE_SECONDS")
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
            if not url.startswith(("postgresql://", "postgresql+psycopg://")):
                raise ValueError(
                    "LLM_DATABASE_URL must be a PostgreSQL URL: postgresql+psycopg://user:"
                    "password@host:5432/database"
                )
        return self

    @model_validator(mode="after")
    def _check_rag(self) -> "Settings":
        if self.rag_chunk_overlap >= self.rag_chunk_size:
            raise ValueError("LLM_RAG_CHUNK_OVERLAP must be smaller than LLM_RAG_CHUNK_SIZE")
        self.chroma_path = (self.chroma_path or self.data_dir / "chroma").resolve()
        return self

    @property
    def models_dir(self) -> Path:
        assert self.base_models_dir is not None
        return self.base_models_dir

    def _store(self, name: str) -> Path | str:
        """Where a store lives: LLM_DATABASE_URL (all stores in one database), else its own
        SQLite file in the data dir (api/db)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return self.data_dir / f"{name}.sqlite"

    @property
    def registry_path(self) -> Path | str:
        return self._store("registry")

    @property
    def jobs_db(self) -> Path | str:
        return self._store("jobs")

    @property
    def documents_db(self) -> Path | str:
        return self._store("documents")

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"


@lru_cache
def get_settings() -> Settings:
    return Settings()
