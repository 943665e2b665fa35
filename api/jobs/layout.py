"""Every path in a job's directory, named once.

The API writes the inputs when it accepts a job (spec.json, run.json, data/, export.json);
the step processes write their outputs (checkpoints/, adapter/, export/, metrics.json, or
error.txt); the runner keeps train.log and pid. Read this file to know what a job leaves on
disk:

    JOB_DIR/
      spec.json           the resolved spec (FineTuneSpec or GenerateSpec)
      run.json            the base's HF checkpoint path (`hf_dir`), `require_cuda`
      export.json         a re-export's overrides (`adapter_dir`, `export`, `quantization`)
      data/               train/validation/test.jsonl (chat messages); seeds/chunks.jsonl
      checkpoints/        checkpoint-N/ (the trainer's, resumable once trainer_state.json is in)
      adapter/            the trained LoRA (safetensors + tokenizer)
      metrics.json        the training step's metrics
      predictions.jsonl   per-row test outputs of the tuned/evaluated and the base model
      export.partial/     an export in progress; renamed to export/ when complete
      export/             GGUF files and result.json (what to serve)
      dataset.jsonl       a dataset job's kept pairs, one per line
      error.txt           why the last step process failed
      train.log           the step processes' output
      pid                 the running step process (to stop an orphan after a restart)
"""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class JobFiles:
    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    @property
    def run(self) -> Path:
        return self.root / "run.json"

    @property
    def export_settings(self) -> Path:
        return self.root / "export.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def data_file(self, name: str) -> Path:
        """data/NAME.jsonl: train, validation, test (fine-tuning); seeds, chunks (datasets)."""
        return self.data / f"{name}.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint_dirs(self) -> list[Path]:
        return list(self.checkpoints.glob("checkpoint-*"))

    def has_checkpoint(self) -> bool:
        return any(self.checkpoints.glob("checkpoint-*"))

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    def has_adapter(self) -> bool:
        return (self.adapter / "adapter_config.json").is_file()

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.jsonl"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def export_partial(self) -> Path:
        return self.root / "export.partial"

    @property
    def result(self) -> Path:
        """export/result.json: the files written and which one to serve."""
        return self.export / RESULT

    @property
    def dataset(self) -> Path:
        return self.root / "dataset.jsonl"

    @property
    def error(self) -> Path:
        return self.root / "error.txt"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def pid(self) -> Path:
        return self.root / "pid"


RESULT = "result.json"  # written into export.partial/ first, then renamed with it
