"""Sampling options, shared by /generate, /v1/chat/completions and a variant's defaults."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class GenerationOptions(BaseModel):
    """Sampling options; unset fields fall back to the model's defaults, then llama.cpp's."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Randomness, 0 (greedy) to 2."
    )
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int | None = Field(None, ge=0, le=1000, description="Sample from the k best tokens.")
    repeat_penalty: float | None = Field(
        None, ge=0.5, le=2.0, description="Penalty for repeated tokens, 1 = none."
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Most tokens to generate (capped by LLM_MAX_TOKENS_LIMIT)."
    )
    stop: list[str] | None = Field(
        None, max_length=8, description="Up to 8 strings that end the reply when produced."
    )
    seed: int | None = Field(
        None, ge=-1, le=2**31 - 1, description="Random seed for reproducible sampling; -1 random."
    )

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, stop: list[str] | None) -> list[str] | None:
        if stop is not None and any(not s or len(s) > 64 for s in stop):
            raise ValueError("each stop string must be 1 to 64 characters long")
        return stop

    def set_values(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)
