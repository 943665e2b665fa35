"""Request and response bodies for the model routes."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.names import ModelName
from api.serving.options import GenerationOptions


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: ModelName = Field(
        ...,
        description="Name of the new variant: lowercase letters, digits, '.', '_', '-'.",
        examples=["hr-bot"],
    )
    base_model: str | None = Field(
        None,
        description="Base model to build on (see GET /listModels); the default base if omitted.",
        examples=["smollm2-135m"],
    )
    system_prompt: str | None = Field(
        None, max_length=8000, description="System prompt used when a request sends none."
    )
    template: str | None = Field(
        None,
        max_length=16000,
        description="Jinja chat template overriding the one in the base's GGUF metadata.",
    )
    parameters: GenerationOptions = Field(
        default_factory=GenerationOptions, description="Default sampling options."
    )


class ModelPublic(BaseModel):
    name: str
    kind: Literal["base", "variant"]
    base_model: str | None = Field(None, description="The base a variant is built on.")
    system_prompt: str | None = None
    template: str | None = None
    parameters: dict[str, object] = Field(default_factory=dict)
    source: str | None = Field(
        None,
        description="Where a base model was provisioned from; "
        "`ollama` for a model from Ollama's library.",
    )
    ollama_model: str | None = Field(
        None,
        description="For a base from Ollama's library: its name in Ollama (e.g. `llama3.2:3b`).",
    )
    lineage: dict[str, object] | None = Field(
        None,
        description="For a fine-tuned model: `job` (and `checkpoint`) it was trained in, "
        "`parent_model` and `parent_job` when it was trained from another fine-tuned model.",
    )
    created_at: str
    unavailable: str | None = Field(
        None,
        description="Set when the serving backend gave up loading this model (backend "
        "`llamaserver`: it failed to load three times in a row): why, and what to do.",
    )


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int


class Message(BaseModel):
    message: str
