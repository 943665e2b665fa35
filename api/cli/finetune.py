"""`llmp finetune`: upload training data, start the job, follow it with a progress bar, and
with --output-path download the result. Seed 000's flags (`--base --dataset-path --bits
--steps --r ...`) are accepted as aliases of the API's fields (api/finetune/spec.py)."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from api.cli.client import Api, fail
from api.cli.downloads import download_model
from api.cli.follow import follow
from api.cli.options import parse_sets
from api.names import NAME_RULE, is_valid_name

HELP = (
    "Fine-tune a model on a CSV/JSON/JSONL file and follow the job (step, loss, eta); "
    "Ctrl-C asks whether to cancel. Seed 000's flags work as aliases."
)


def _model_name(model_name: str | None, output_path: Path | None) -> str:
    if model_name:
        return model_name
    if output_path is None:
        fail("Missing --model-name (the name of the fine-tuned model).")
    derived = output_path.name.lower()
    if not is_valid_name(derived):
        fail(
            f"--model-name not given and {output_path.name!r} (from --output-path) is not a "
            f"model name; give --model-name: {NAME_RULE}."
        )
    return derived


def command(api: Callable[[], Api], out: Console) -> Callable[..., None]:
    def finetune(
        train_file: Annotated[
            Path | None,
            typer.Option(
                "--train-file",
                "--dataset-path",
                exists=True,
                dir_okay=False,
                help="Training data: CSV, JSON or JSONL.",
            ),
        ] = None,
        model_name: Annotated[
            str | None,
            typer.Option(
                "--model-name",
                "-n",
                help="Name of the result (default: --output-path's last part).",
            ),
        ] = None,
        base_model: Annotated[
            str | None, typer.Option("--base-model", "--base", help="Base model.")
        ] = None,
        eval_file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
        dataset_id: Annotated[
            str | None, typer.Option(help="Train on a generated dataset instead of a file.")
        ] = None,
        bits: Annotated[int | None, typer.Option(help="4 (QLoRA), 8 or 16.")] = None,
        max_steps: Annotated[int | None, typer.Option("--max-steps", "--steps")] = None,
        epochs: Annotated[float | None, typer.Option()] = None,
        lora_r: Annotated[int | None, typer.Option("--lora-r", "--r", help="LoRA rank.")] = None,
        lora_alpha: Annotated[int | None, typer.Option("--lora-alpha")] = None,
        lora_dropout: Annotated[float | None, typer.Option("--lora-dropout")] = None,
        train_size: Annotated[float | None, typer.Option("--train-size")] = None,
        seed: Annotated[int | None, typer.Option()] = None,
        max_len: Annotated[int | None, typer.Option("--max-len")] = None,
        batch_size: Annotated[int | None, typer.Option("--batch-size", "--batch_size")] = None,
        learning_rate: Annotated[float | None, typer.Option("--learning-rate")] = None,
        system_prompt: Annotated[str | None, typer.Option("--system-prompt")] = None,
        export: Annotated[str | None, typer.Option(help="merged, adapter or none.")] = None,
        quantization: Annotated[
            list[str] | None, typer.Option("--quantization", "-q", help="GGUF types.")
        ] = None,
        has_system_prompt: Annotated[
            int | None,
            typer.Option(
                "--has-system-prompt",
                min=0,
                max=1,
                help="Seed 000's flag: 0 folds the system text into the first user turn "
                "(system_role merge, for templates without a system role), 1 keeps it "
                "(native); default: detected from the template (auto).",
            ),
        ] = None,
        output_path: Annotated[
            Path | None,
            typer.Option("--output-path", help="Download the result's files here at the end."),
        ] = None,
        set_: Annotated[
            list[str] | None, typer.Option("--set", help="Any other spec field KEY=VALUE.")
        ] = None,
        no_follow: Annotated[
            bool, typer.Option("--no-follow", help="Print the job id only.")
        ] = False,
    ) -> None:
        if (train_file is None) == (dataset_id is None):
            fail("Give the training data: --train-file/--dataset-path FILE or --dataset-id ID.")
        fields: dict[str, Any] = {
            "model_name": _model_name(model_name, output_path),
            "base_model": base_model,
            "bits": bits,
            "max_steps": max_steps,
            "epochs": epochs,
            "lora_r": lora_r,
            "lora_alpha": lora_alpha,
            "lora_dropout": lora_dropout,
            "train_size": train_size,
            "seed": seed,
            "max_len": max_len,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "system_prompt": system_prompt,
            "export": export,
            "dataset_id": dataset_id,
            "system_role": {0: "merge", 1: "native"}.get(has_system_prompt)
            if has_system_prompt is not None
            else None,
        }
        data: dict[str, Any] = {k: str(v) for k, v in fields.items() if v is not None}
        data.update(parse_sets(set_ or [], typed=False))
        if quantization:
            data["quantization"] = quantization
        files = []
        for field, path in (("train_file", train_file), ("eval_file", eval_file)):
            if path is not None:
                files.append((field, (path.name, path.read_bytes(), "application/octet-stream")))
        client = api()
        job = client.json("POST", "/fine_tune_model", data=data, files=files or None)
        print(job["id"])
        if no_follow:
            return
        job = follow(client, job["id"])
        metrics = job.get("metrics") or {}
        shown = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        out.print(f"Job {job['id']} succeeded: model {job['model_name']}. {shown}")
        if output_path is not None:
            download_model(client, out, job["model_name"], output_path)

    return finetune
