"""Sampling options, shared by /generate, /v1/chat/completions and a variant's defaults."""

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

# In the schema too, so clients (and the API fuzzer) know what a stop string may be.
StopString = Annotated[str, Field(min_length=1, max_length=64)]


def _number(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return value


def json_int(**bounds: int) -> Any:
    """An integer as JSON Schema has it: 5 and 5.0, not `true` or "5". Request models are
    strict (JSON types as the schema says), and strict alone would refuse 5.0."""
    return Annotated[int, Field(strict=False, **bounds), BeforeValidator(_number)]  # type: ignore[call-overload]


class GenerationOptions(BaseModel):
    """Sampling options; unset fields fall back to the model's defaults, then llama.cpp's."""

    # strict: `true` is not a seed of 1, nor "5" a top_k (JSON types as the schema says)
    model_config = ConfigDict(extra="forbid", strict=True)

    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Randomness, 0 (greedy) to 2."
    )
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: json_int(ge=0, le=1000) | None = Field(  # type: ignore[valid-type]
        None, description="Sample from the k best tokens."
    )
    repeat_penalty: float | None = Field(
        None, ge=0.5, le=2.0, description="Penalty for repeated tokens, 1 = none."
    )
    max_tokens: json_int(ge=1) | None = Field(  # type: ignore[valid-type]
        None, description="Most tokens to generate (capped by LLM_MAX_TOKENS_LIMIT)."
    )
    stop: list[StopString] | None = Field(
        None, max_length=8, description="Up to 8 strings that end the reply when produced."
    )
    seed: json_int(ge=-1, le=2**31 - 1) | None = Field(  # type: ignore[valid-type]
        None, description="Random seed for reproducible sampling; -1 random."
    )

    @field_validator("stop", mode="before")
    @classmethod
    def _check_stop(cls, stop: Any) -> Any:
        if isinstance(stop, list) and any(
            isinstance(s, str) and not 1 <= len(s) <= 64 for s in stop
        ):
            raise ValueError("each stop string must be 1 to 64 characters long")
        return stop

    def set_values(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)
