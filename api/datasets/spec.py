"""What a dataset-generation job is asked to do (the form of POST /datasets/generate)."""

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.names import NAME_PATTERN

OPENAI_PREFIX = "openai:"


class GenerateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teacher: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="The model that writes the pairs: a served model by name (GET /listModels), "
        "or `openai:<model>` for the OpenAI-compatible endpoint configured in "
        "LLM_TEACHER_BASE_URL.",
    )
    model: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Documents mode: write questions and grounded answers from this model's "
        "imported documents (instead of a seed file).",
    )
    documents: list[str] | None = Field(
        None, description="Documents mode: only these documents (default: all of the model's)."
    )
    count: int = Field(50, ge=1, description="How many pairs to produce.")
    guidance: str | None = Field(
        None,
        max_length=2000,
        description="Optional prompt for the teacher: the subject, tone or audience of the "
        "tasks; it is also the system prompt for the answers.",
    )
    similarity_threshold: float = Field(
        0.7,
        gt=0,
        le=1,
        description="Drop an instruction whose ROUGE-L F1 with one already "
        "kept (or a seed) is above this.",
    )
    max_output_chars: int = Field(
        2000, ge=1, le=100_000, description="Drop answers longer than this."
    )
    max_new_tokens: int = Field(
        256,
        ge=8,
        le=4096,
        description="Most tokens the teacher writes for one answer; "
        "answers cut off at this length are dropped.",
    )
    temperature: float = Field(
        0.8, ge=0, le=2, description="Sampling temperature for new instructions."
    )
    answer_temperature: float = Field(
        0.3, ge=0, le=2, description="Sampling temperature for answers."
    )
    min_support: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Documents mode: the share of an answer's content words that must appear "
        "in its source passage.",
    )
    max_rounds: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Most teacher rounds before giving up (default: 5 per requested pair).",
    )
    seed: int = Field(-1, ge=-1, le=2**31 - 1, description="Random seed; -1 picks one.")
    concurrency: int = Field(
        1,
        ge=1,
        le=16,
        description="Teacher requests in flight at once (an `openai:` teacher only; a served "
        "model answers one at a time).",
    )
    requests_per_minute: float | None = Field(
        None,
        gt=0,
        le=100_000,
        description="Most teacher requests a minute (`openai:` teacher; a token bucket shared "
        "by the concurrent requests). HTTP 429 answers are retried after their Retry-After.",
    )
    rate_limit_retries: int = Field(
        5, ge=0, le=20, description="Retries of one request answered HTTP 429 before failing."
    )

    @field_validator("teacher")
    @classmethod
    def _teacher_shape(cls, value: str) -> str:
        value = value.strip()
        if value.startswith(OPENAI_PREFIX):
            if not value[len(OPENAI_PREFIX) :].strip():
                raise ValueError(
                    "name the endpoint's model after `openai:`, e.g. openai:gpt-4o-mini"
                )
        return value

    @field_validator("documents")
    @classmethod
    def _no_empty_names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not [v for v in value if v.strip()]:
            raise ValueError("list at least one document name, or leave `documents` out")
        return value

    @property
    def rounds(self) -> int:
        return self.max_rounds or 5 * self.count

    @property
    def openai_model(self) -> str | None:
        if self.teacher.startswith(OPENAI_PREFIX):
            return self.teacher[len(OPENAI_PREFIX) :].strip()
        return None
