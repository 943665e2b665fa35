"""The README.md model card of a Hub push, written from the fine-tuning job's spec and metrics."""

from typing import Any

PLATFORM = "local-llm-platform"

_HYPERPARAMETERS = (
    "epochs",
    "max_steps",
    "learning_rate",
    "batch_size",
    "gradient_accumulation_steps",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "bits",
    "max_len",
    "packing",
    "warmup_ratio",
    "lr_scheduler_type",
    "optimizer",
    "seed",
    "train_size",
    "export",
    "quantization",
)


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _metric_rows(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        if key == "report" or value is None:
            continue
        if isinstance(value, dict) and not prefix:  # one level: rouge, base, ...
            rows += _metric_rows(value, f"{key}.")
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            rows.append((prefix + key, value))
    return rows


def model_card(
    *,
    model: str,
    repo_id: str,
    files: list[tuple[str, int, str]],
    spec: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
) -> str:
    """Markdown with YAML front matter; `files` are (path, size, sha256)."""
    spec = spec or {}
    base = spec.get("base_model")
    tags = [PLATFORM, "gguf" if any(p.endswith(".gguf") for p, _, _ in files) else "peft"]
    has_adapter = any(p.startswith("adapter/") for p, _, _ in files)
    front = ["---", f"tags: [{', '.join(tags)}]"]
    if has_adapter:
        front.append("library_name: peft")
    front.append("---")
    lines = [*front, "", f"# {repo_id.split('/')[-1]}", ""]
    if base:
        method = f"QLoRA ({spec['bits']}-bit)" if spec.get("bits") else "LoRA"
        lines.append(
            f"`{model}`: `{base}` fine-tuned with {method} on {PLATFORM}, a self-hosted "
            "platform for customising local LLMs."
        )
    else:
        lines.append(f"`{model}`, as served by {PLATFORM}, a self-hosted LLM platform.")
    lines.append("")
    if base:
        lines += [
            "## Training",
            "",
            f"- Base model: `{base}`",
            f"- Method: {'QLoRA' if spec.get('bits') else 'LoRA'}",
        ]
        if spec.get("system_prompt"):
            lines.append(f"- System prompt: {_value(spec['system_prompt'])}")
        lines += ["", "| hyperparameter | value |", "|---|---|"]
        lines += [
            f"| {k} | {_value(spec[k])} |" for k in _HYPERPARAMETERS if spec.get(k) is not None
        ]
        lines.append("")
    rows = _metric_rows(metrics or {})
    if rows:
        lines += ["## Evaluation", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_value(v)} |" for k, v in rows]
        lines.append("")
    lines += ["## Files", "", "| file | bytes | sha256 |", "|---|---|---|"]
    lines += [f"| {p} | {size} | `{digest}` |" for p, size, digest in files]
    lines.append("")
    return "\n".join(lines)
