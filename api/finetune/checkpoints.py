"""A job's saved checkpoints with their metrics, read from each one's trainer_state.json.

The trainer keeps the last two checkpoints (and, with select_best, the best one); each
records the log history up to its step, so each shows its own train and eval loss.
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.errors import InvalidInput
from api.jobs.layout import JobFiles


def _entry(directory: Path) -> dict[str, Any] | None:
    state_file = directory / "trainer_state.json"
    if not state_file.is_file() or not (directory / "adapter_config.json").is_file():
        return None  # a save cut short, or not an adapter checkpoint
    state = json.loads(state_file.read_text())
    step = int(state["global_step"])
    history = [h for h in state.get("log_history", []) if h.get("step", 0) <= step]
    losses = [h["loss"] for h in history if "loss" in h]
    evals = [h["eval_loss"] for h in history if "eval_loss" in h and h.get("step") == step]
    created = datetime.fromtimestamp(state_file.stat().st_mtime, UTC)
    return {
        "step": step,
        "epoch": state.get("epoch"),
        "train_loss": losses[-1] if losses else None,
        "eval_loss": evals[-1] if evals else None,
        "created_at": created.isoformat(timespec="seconds"),
        "best": False,
    }


def list_checkpoints(files: JobFiles) -> list[dict[str, Any]]:
    """Complete checkpoints by step; the one with the lowest eval loss has best=True."""
    entries = [e for d in files.checkpoint_dirs() if (e := _entry(d)) is not None]
    entries.sort(key=lambda e: e["step"])
    scored = [e for e in entries if e["eval_loss"] is not None]
    if scored:
        min(scored, key=lambda e: e["eval_loss"])["best"] = True
    return entries


def checkpoint_dir(files: JobFiles, job_id: str, step: int) -> Path:
    """The adapter saved at `step`, or a 422 listing the steps there are."""
    directory = files.checkpoints / f"checkpoint-{step}"
    if _entry(directory) is None:
        steps = ", ".join(str(e["step"]) for e in list_checkpoints(files)) or "none"
        raise InvalidInput(
            f"checkpoint: job {job_id} has no complete checkpoint at step {step}; "
            f"its checkpoints are at steps: {steps} (GET /jobs/{job_id}/checkpoints)."
        )
    return directory
