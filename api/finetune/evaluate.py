"""The evaluate step: loss, perplexity and ROUGE of a model (and the one it is compared
with) on the job's test rows, and each row's predictions. Imports torch.

Run by the job runner as a step process (`python -m api.finetune.evaluate JOB_DIR --db
JOBS_DB`). Reads spec.json (EvaluateSpec), run.json (`model` and `compare`: the base's HF
checkpoint, the adapters merged onto it, the system prompt) and data/test.jsonl. Writes
metrics.json and predictions.jsonl. A GPTQ base loads through gptqmodel's torch kernel (fp32,
on the CPU, as every evaluation here), its adapter unmerged beside the quantised layers.
"""

import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from rouge_score import rouge_scorer

from api.finetune import gptq
from api.finetune.chain import apply_adapters
from api.finetune.evaluation import EvaluateSpec
from api.finetune.predictions import record, write_predictions
from api.finetune.quantised_base import quantisation
from api.finetune.recipe import load_tokenizer, read_rows
from api.jobs import step
from api.jobs.cpu_priority import yield_cpu
from api.jobs.layout import JobFiles
from api.jobs.store import JobStore

Messages = list[dict[str, str]]


def _with_system(messages: Messages, system: str | None) -> Messages:
    if system and messages[0]["role"] != "system":
        return [{"role": "system", "content": system}, *messages]
    return messages


def score(side: dict[str, Any], rows: list[Messages], spec: EvaluateSpec) -> dict[str, Any]:
    """Mean answer-token loss, perplexity, ROUGE and each row's answer for one model."""
    from transformers import AutoModelForCausalLM

    hf_dir = Path(side["hf_dir"])
    tokenizer: Any = load_tokenizer(hf_dir)  # transformers' own types are loose here
    quantised = quantisation(hf_dir) is not None  # GPTQ: the service checked it loads here
    if quantised:
        gptq.enable()
    model: Any = AutoModelForCausalLM.from_pretrained(
        hf_dir,
        use_safetensors=True,
        trust_remote_code=False,
        **(gptq.load_kwargs(cuda=False) if quantised else {"dtype": torch.float32}),
    )
    model = apply_adapters(model, side["adapters"], quantised).eval()
    system = spec.system_prompt or side.get("system_prompt")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    loss_sum, tokens = 0.0, 0
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    answers: list[tuple[str, float]] = []
    for messages in rows:
        messages = _with_system(messages, system)
        prompt = tokenizer.apply_chat_template(
            messages[:-1], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        full = tokenizer.apply_chat_template(messages, return_tensors="pt", return_dict=True)
        start = prompt["input_ids"].shape[1]
        labels = full["input_ids"].clone()
        labels[:, :start] = -100
        with torch.no_grad():
            out = model(**full, labels=labels)
            count = int((labels[:, 1:] != -100).sum())
            loss_sum += float(out.loss) * count
            tokens += count
            generated = model.generate(
                **prompt,
                max_new_tokens=spec.eval_max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        text: str = tokenizer.decode(generated[0, start:], skip_special_tokens=True)
        result = scorer.score(messages[-1]["content"], text)
        for key in totals:
            totals[key] += result[key].fmeasure
        answers.append((text, result["rougeL"].fmeasure))
    loss = loss_sum / max(tokens, 1)
    return {
        "model": side["name"],
        "loss": round(loss, 4),
        "perplexity": round(math.exp(loss), 3),
        "rouge": {k: round(v / len(rows), 4) for k, v in totals.items()},
        "answers": answers,
    }


def run(job_dir: Path, store: JobStore, resume: bool) -> None:
    files = JobFiles(job_dir)
    cpu_priority = yield_cpu(on_gpu=False)  # scored on the CPU: serving comes first
    spec = EvaluateSpec(**json.loads(files.spec.read_text()))
    run_info = json.loads(files.run.read_text())
    rows = read_rows(files.data_file("test"))
    sides = [("model", run_info["model"]), ("compare", run_info.get("compare"))]
    results: dict[str, Any] = {"test_rows": len(rows), "cpu_priority": cpu_priority}
    predictions: list[dict[str, Any]] = []
    for key, side in sides:
        if side is None:
            continue
        store.add_event(job_dir.name, "evaluating", f"Scoring {side['name']} on {len(rows)} rows.")
        result = score(side, rows, spec)
        for i, (text, rouge_l) in enumerate(result.pop("answers")):
            record(predictions, i, rows[i], text, rouge_l, base=key == "compare")
        results[key] = result
    write_predictions(files.predictions, predictions)
    files.metrics.write_text(json.dumps(results, indent=2))
    store.set_metrics(job_dir.name, results)


if __name__ == "__main__":
    sys.exit(step.main(run, description="Evaluate one model on a test file."))
