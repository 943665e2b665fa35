"""The fine-tuning job kinds: train (api/finetune/recipe.py) then export
(api/finetune/export.py), export an earlier job's adapter again, or evaluate a model
(api/finetune/evaluate.py)."""

from api.jobs.kinds import ChildStep, JobKind, Publish

TRAIN = ChildStep("api.finetune.recipe", "Training failed")
EXPORT = ChildStep("api.finetune.export", "Export failed")
EVALUATE = ChildStep("api.finetune.evaluate", "Evaluation failed")


def fine_tune_kinds(publish: Publish | None = None) -> dict[str, JobKind]:
    """`fine_tune` and `export` jobs; without `publish` an export is left unregistered."""
    return {
        "fine_tune": JobKind(train=TRAIN, export=EXPORT, publish=publish),
        "export": JobKind(export=EXPORT, publish=publish),
        "evaluate": JobKind(train=EVALUATE),  # POST /evaluate: score a model, no export
    }
