"""Export a trained adapter for serving: merge -> GGUF -> quantise, or adapter -> GGUF.

Run by the job runner as a step process (api/jobs/step.py: `python -m api.finetune.export
JOB_DIR --db JOBS_DB`; merging loads the whole model). Reads spec.json (`export`,
`quantization`), run.json (the base's HF checkpoint) and adapter/ (from this job or
`adapter_dir` in export.json for a re-export). Writes export/ and export/result.json naming
the file to serve; on failure error.txt, and nothing in export/.

The merge always loads the base in 16/32-bit, never 4-bit: merging into a quantised base
rounds the LoRA update away. A GPTQ base is dequantised to fp16 first (api/finetune/gptq.py). llama.cpp's own converters write the GGUF, so the chat
template and the end-of-turn/EOS tokens travel in the GGUF metadata.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from api.childproc import die_with_parent
from api.config import REPO_ROOT
from api.finetune import gptq
from api.finetune.merge import merge_shards, unsupported
from api.finetune.quant_types import CONVERTED
from api.finetune.quantised_base import quantisation
from api.finetune.spec import FineTuneSpec
from api.jobs import step
from api.jobs.cpu_priority import yield_cpu
from api.jobs.layout import RESULT, JobFiles
from api.jobs.store import JobStore
from api.serving.llama_children import describe_exit
from api.serving.scrub import scrub_paths

CONVERT_HF = REPO_ROOT / "llama.cpp" / "convert_hf_to_gguf.py"
CONVERT_LORA = REPO_ROOT / "llama.cpp" / "convert_lora_to_gguf.py"
LLAMA_QUANTIZE = REPO_ROOT / "llama.cpp" / "bin" / "llama-quantize"


class ExportError(Exception):
    """A step of the export failed; the message says which and why."""


def _converter(script: Path, *args: str) -> None:
    if not script.is_file():
        raise ExportError(f"{script.name} is missing: run scripts/setup_llamacpp.sh.")
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        preexec_fn=die_with_parent(),
    )
    if result.returncode != 0:
        raise ExportError(f"{script.name} failed:\n{result.stderr[-3000:]}")


def merge(
    adapter_dir: Path, base_hf: Path, out_dir: Path, parents: list[str] | None = None
) -> None:
    """Merge the LoRA into the 16-bit base and save safetensors + tokenizer: shard by shard
    in the base's dtype (api/finetune/merge.py), or with PEFT in fp32 for adapters that
    merge cannot take and for a chain (`parents`: the adapters of the fine-tuned model it
    was trained from, merged first)."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    dequantised = None
    if quantisation(base_hf) is not None:  # GPTQ: LoRA merges into the fp16 dequantised base
        base_hf = dequantised = gptq.dequantise(base_hf, out_dir.parent / "base-fp16")
    if unsupported(config) is None and not parents:
        merge_shards(adapter_dir, base_hf, out_dir)
    else:
        _peft_merge(adapter_dir, base_hf, out_dir, parents or [])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir, trust_remote_code=False)
    tokenizer.save_pretrained(out_dir)
    # generation_config carries the EOS ids that the converter writes into the GGUF
    for name in ("generation_config.json",):
        if (base_hf / name).is_file() and not (out_dir / name).is_file():
            shutil.copy(base_hf / name, out_dir / name)
    if dequantised is not None:
        shutil.rmtree(dequantised)


def _peft_merge(
    adapter_dir: Path, base_hf: Path, out_dir: Path, parents: list[str] | None = None
) -> None:
    """The whole model in fp32 (DoRA, rank patterns, extra trained modules, chains)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from api.finetune.chain import merge_adapters

    base = AutoModelForCausalLM.from_pretrained(
        base_hf, dtype=torch.float32, use_safetensors=True, trust_remote_code=False
    )
    base = merge_adapters(base, parents or [])  # type: ignore[assignment]
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(out_dir, safe_serialization=True)


def quantize(source: Path, target: Path, kind: str, binary: Path = LLAMA_QUANTIZE) -> None:
    """Quantise a GGUF with llama.cpp's `llama-quantize` (built by `make setup`)."""
    if not binary.is_file():
        raise ExportError(
            f"{binary.name} is missing: run `make setup` (scripts/build_llamacpp.sh)."
        )
    result = subprocess.run(
        [str(binary), str(source), str(target), kind],
        capture_output=True,
        text=True,
        errors="replace",
        preexec_fn=die_with_parent(),
    )
    if result.returncode != 0 or not target.is_file():
        target.unlink(missing_ok=True)
        output = (result.stdout + result.stderr).strip().splitlines()
        raise ExportError(
            f"llama-quantize could not quantise to {kind} ({describe_exit(result.returncode)}):\n"
            + scrub_paths("\n".join(output[-15:]))
        )


def export(job_dir: Path, store: JobStore) -> dict[str, Any]:
    job_files = JobFiles(job_dir)
    spec = FineTuneSpec(**json.loads(job_files.spec.read_text()))
    overrides = job_files.export_settings
    settings = json.loads(overrides.read_text()) if overrides.is_file() else {}
    mode = settings.get("export", spec.export)
    kinds: list[str] = settings.get("quantization", spec.quantization)
    run = json.loads(job_files.run.read_text())
    base_hf, parents = Path(run["hf_dir"]), run.get("merge_adapters", [])
    adapter = Path(settings.get("adapter_dir", job_files.adapter))
    out = job_files.export
    work = job_files.export_partial
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    timings: dict[str, float] = {}

    def step(name: str, message: str) -> float:
        store.add_event(job_dir.name, "exporting", message, step=name)
        return time.monotonic()

    if mode == "adapter" and parents:
        raise ExportError("A model trained on a merged fine-tuned model exports `merged` only.")
    if mode == "adapter":
        started = step("adapter_convert", "Converting the LoRA adapter to GGUF.")
        _converter(
            CONVERT_LORA,
            str(adapter),
            "--base",
            str(base_hf),
            "--outfile",
            str(work / "adapter.gguf"),
            "--outtype",
            "f16",
        )
        timings["adapter_convert_s"] = round(time.monotonic() - started, 2)
        files, serve = {"adapter": "adapter.gguf"}, {"adapter": "adapter.gguf"}
    else:
        started = step("merge", "Merging the adapter into the 16-bit base.")
        merge(adapter, base_hf, work / "merged", parents)
        timings["merge_s"] = round(time.monotonic() - started, 2)
        started = step("convert", "Converting the merged model to GGUF (F16).")
        _converter(
            CONVERT_HF,
            str(work / "merged"),
            "--outfile",
            str(work / "model-F16.gguf"),
            "--outtype",
            "f16",
        )
        timings["convert_s"] = round(time.monotonic() - started, 2)
        shutil.rmtree(work / "merged")
        files = {}
        for kind in kinds:
            started = step("quantize", f"Quantising to {kind}.")
            if kind != CONVERTED:
                quantize(work / "model-F16.gguf", work / f"model-{kind}.gguf", kind)
            files[kind] = f"model-{kind}.gguf"
            timings[f"quantize_{kind}_s"] = round(time.monotonic() - started, 2)
        if CONVERTED not in kinds:
            (work / "model-F16.gguf").unlink()
        serve = {"gguf": files[kinds[0]]}
    sizes = {name: (work / f).stat().st_size for name, f in files.items()}
    result = {"mode": mode, "files": files, "serve": serve, "sizes": sizes, "timings": timings}
    (work / RESULT).write_text(json.dumps(result, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    return result


def run(job_dir: Path, store: JobStore, resume: bool) -> None:
    """The export step (an export always starts over: `resume` changes nothing). Merging,
    converting and quantising run on the CPU, below serving (api/jobs/cpu_priority.py)."""
    yield_cpu(on_gpu=False)
    export(job_dir, store)


def _discard_partial(files: JobFiles) -> None:
    shutil.rmtree(files.export_partial, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(
        step.main(
            run, description="Export one job's adapter for serving.", on_failure=_discard_partial
        )
    )
