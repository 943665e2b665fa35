"""FineTuneSpec fields for checkpoint selection, continued training and several training
files (issue #17), kept together; FineTuneSpec inherits them."""

from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator


class TrainingOptions(BaseModel):
    select_best: bool = Field(
        False,
        description="At the end, load the checkpoint with the lowest eval loss (not the last) "
        "and export that one. Needs eval_steps > 0 and checkpoint_steps a multiple of it, so "
        "that every checkpoint has an eval loss.",
    )
    continue_adapter: bool = Field(
        False,
        description="When base_model is a fine-tuned model: keep training its LoRA adapter "
        "(and export it as one adapter) instead of merging it into its base and training a "
        "new one.",
    )
    train_file_weights: str | None = Field(
        None,
        max_length=500,
        description="With several train_file uploads: one weight per file, comma-separated "
        "(`1,2` repeats the second file's training rows twice); a fraction keeps that share "
        "of the rows. Default: every file once.",
    )

    @field_validator("train_file_weights")
    @classmethod
    def _weights_are_numbers(cls, text: str | None) -> str | None:
        if text is not None:
            parse_weights(text)
        return text

    @model_validator(mode="after")
    def _best_needs_aligned_steps(self) -> Any:
        if self.select_best:
            eval_steps = getattr(self, "eval_steps", 0)
            save_steps = getattr(self, "checkpoint_steps", 1)
            if not eval_steps or save_steps % eval_steps:
                raise ValueError(
                    "select_best needs eval_steps > 0 and checkpoint_steps a multiple of "
                    f"eval_steps (got eval_steps={eval_steps}, checkpoint_steps={save_steps}), "
                    "so that every checkpoint has an eval loss to compare"
                )
        return self


def parse_weights(text: str) -> list[float]:
    """`1,2,0.5` -> [1.0, 2.0, 0.5]; each weight above 0 and at most 100."""
    weights = []
    for part in text.split(","):
        try:
            weight = float(part.strip())
        except ValueError:
            raise ValueError(
                f"train_file_weights must be comma-separated numbers such as `1,2`; "
                f"{part.strip()!r} is not a number"
            ) from None
        if not 0 < weight <= 100:
            raise ValueError(f"train_file_weights: each weight must be > 0 and <= 100, not {part}")
        weights.append(weight)
    return weights
