"""A GPTQ base end to end on the CPU: the tiny Llama quantised with GPTQConfig (4-bit, group
32), provisioned with `load_base_model.py --from-dir` (the local variant of `--hf`: same
conversion, quantization_config kept), LoRA trained on the quantised weights through a real
job, exported merged (dequantised to fp16 first), and the exported GGUF answering; then the
tuned model, registered as publishing would, evaluated against its GPTQ base (POST /evaluate)
and trained further as the same adapter (continue_adapter; merging into the 4-bit base is a
422).

gptqmodel's torch kernel runs here; its CUDA kernels run in `make gpu-check`."""

import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient
from gguf import GGUFReader
from safetensors.numpy import load_file

from api.config import REPO_ROOT, Settings
from api.finetune.lineage import lineage_of
from api.main import create_app
from api.models.registry import Variant
from tests.utils.jobs import submit, wait_for
from tests.utils.tiny_model import TINY, qa_csv

BASE = "tiny-gptq"
TUNED = "gptq-tuned"
# one seed for the tuned job and the continued one: the same validation rows in both
SEED = "1"


@pytest.fixture(scope="module")
def gptq_models(tiny_models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("gptq")
    checkpoint = root / "checkpoint"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.utils.gptq_model",
            str(tiny_models_dir / TINY / "hf"),
            str(checkpoint),
        ],
        cwd=REPO_ROOT,
        check=True,
        timeout=600,
    )
    data = root / "data"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "load_base_model.py"),
            "--from-dir",
            str(checkpoint),
            "--name",
            BASE,
            "--outtype",
            "f32",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "LLM_DATA_DIR": str(data)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return data / "models"


@functools.cache
def _reader(path):
    return GGUFReader(path)  # slow to open: it parses the 49k-token vocabulary


def _tensor(path, name):
    reader = _reader(path)
    tensor = next(t for t in reader.tensors if t.name == name)
    return np.array(tensor.data, dtype=np.float32).reshape(tensor.shape[::-1])


def test_provisioning_keeps_the_quantisation_and_serves_the_dequantised_weights(
    gptq_models, tiny_models_dir
):
    hf = gptq_models / BASE / "hf"
    config = json.loads((hf / "config.json").read_text())["quantization_config"]
    assert (config["quant_method"], config["bits"], config["group_size"]) == ("gptq", 4, 32)
    assert not any(k.endswith("v_proj.weight") for k in load_file(hf / "model.safetensors"))
    # llama.cpp's converter dequantised the GPTQ weights: close to the original 16-bit ones
    served = _tensor(gptq_models / BASE / "model.gguf", "blk.0.attn_v.weight")
    original = _tensor(tiny_models_dir / TINY / "model.gguf", "blk.0.attn_v.weight")
    error = np.abs(served - original).mean() / np.abs(original).mean()
    assert 0 < error < 0.25  # 4-bit rounding of random weights: about 0.13


@pytest.fixture(scope="module")
def client(gptq_models, tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        base_models_dir=gptq_models,
        threads=2,
        job_poll_seconds=0.1,
    )
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def tuned(client):
    """LoRA trained on the GPTQ base through a job, registered as `gptq-tuned` as publishing
    would (its export is tested below, from the job's directory)."""
    r = submit(client, base_model=BASE, mixed_precision="fp32", seed=SEED)
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=600)
    assert job["status"] == "succeeded", job["error"]
    _register(client, job, TUNED)
    return job


def _register(client, job, name):
    store, registry = client.app.state.job_store, client.app.state.registry
    registry.add(Variant(name=name, base_model=BASE, lineage=lineage_of(store.require(job["id"]))))


def test_lora_trains_on_gptq_weights_and_both_exports_answer(client, tuned, gptq_models):
    from api.serving.llama_model import open_llama

    job = tuned
    metrics = job["metrics"]
    assert np.isfinite([metrics["train_loss_first"], metrics["train_loss_last"]]).all()
    assert metrics["eval_loss"] < metrics["eval_loss_before"]  # it learnt on the 4-bit base
    settings = client.app.state.settings
    job_dir = settings.jobs_dir / job["id"]
    adapter = load_file(job_dir / "adapter" / "adapter_model.safetensors")
    key = "base_model.model.model.layers.0.self_attn.v_proj.lora_{}.weight"
    lora_a, lora_b = adapter[key.format("A")], adapter[key.format("B")]
    assert np.abs(lora_b).max() > 0  # B starts at zero: the steps changed it

    (job_dir / "export.json").write_text(json.dumps({"export": "merged", "quantization": ["F16"]}))
    result = _export(job_dir, settings.jobs_db)
    gguf = job_dir / "export" / result["files"]["F16"]
    assert not (job_dir / "export" / "base-fp16").exists()
    # merged = dequantised base (as llama.cpp dequantises it for serving) + the LoRA update
    spec = json.loads((job_dir / "spec.json").read_text())
    delta = spec["lora_alpha"] / spec["lora_r"] * lora_b.astype(np.float32) @ lora_a
    base = _tensor(gptq_models / BASE / "model.gguf", "blk.0.attn_v.weight")
    merged = _tensor(gguf, "blk.0.attn_v.weight")
    assert np.abs(merged - (base + delta)).max() < 2e-3  # fp16 rounding
    assert np.abs(merged - base).max() > 10 * 2e-3  # the update is there
    llm = open_llama(gguf, n_ctx=128, verbose=False)
    assert (
        llm.create_completion("What is 2 plus 2?", max_tokens=4)["usage"]["completion_tokens"] >= 1
    )

    # the adapter alone, on the base's GGUF (which llama.cpp dequantised at provisioning)
    (job_dir / "export.json").write_text(json.dumps({"export": "adapter"}))
    assert _export(job_dir, settings.jobs_db)["serve"] == {"adapter": "adapter.gguf"}
    llm = open_llama(
        gptq_models / BASE / "model.gguf",
        lora_path=str(job_dir / "export" / "adapter.gguf"),
        n_ctx=128,
        verbose=False,
    )
    assert (
        llm.create_completion("What is 2 plus 2?", max_tokens=4)["usage"]["completion_tokens"] >= 1
    )


def test_evaluate_the_tuned_model_against_its_gptq_base(client, tuned):
    """One evaluate job scores both: the tuned model (its adapter unmerged beside the 4-bit
    layers) and, as `compare`, the GPTQ base alone."""
    r = client.post(
        "/evaluate",
        data={"model": TUNED, "eval_max_new_tokens": "2"},
        files={"test_file": ("test.csv", qa_csv(4), "text/csv")},  # rows like its training rows
    )
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=300)
    assert job["status"] == "succeeded", job["error"]
    metrics = job["metrics"]
    assert (metrics["model"]["model"], metrics["compare"]["model"]) == (TUNED, BASE)
    for side in ("model", "compare"):
        assert np.isfinite(metrics[side]["loss"]) and metrics[side]["loss"] > 0
        assert set(metrics[side]["rouge"]) == {"rouge1", "rouge2", "rougeL"}
    # the adapter is applied: the tuned model fits rows of its training kind better than the base
    assert metrics["model"]["loss"] < metrics["compare"]["loss"]
    rows = [json.loads(x) for x in client.get(f"/jobs/{job['id']}/predictions").text.splitlines()]
    assert len(rows) == 4 and all(p["output"] is not None and p["base_output"] for p in rows)


def test_continue_training_the_adapter_on_the_gptq_base(client, tuned):
    before = client.get("/jobs").json()["count"]
    # merging the adapter into 4-bit weights is refused, saying what to do instead
    r = submit(client, name="gptq-merged", base_model=TUNED, mixed_precision="fp32")
    assert r.status_code == 422, r.text
    assert "cannot be merged into the quantised weights" in r.json()["detail"]
    assert "Set continue_adapter: true" in r.json()["detail"]
    assert client.get("/jobs").json()["count"] == before

    r = submit(
        client,
        name="gptq-more",
        base_model=TUNED,
        continue_adapter="true",
        mixed_precision="fp32",
        seed=SEED,
        max_steps="2",
        eval_rows="0",  # no ROUGE generation: the losses say what is checked
    )
    assert r.status_code == 202, r.text
    assert r.json()["base_model"] == BASE
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=600)
    assert job["status"] == "succeeded", job["error"]
    metrics, parent = job["metrics"], tuned["metrics"]
    # it started from the parent's adapter on the same validation rows, and trained it on
    assert metrics["eval_loss_before"] == pytest.approx(parent["eval_loss"], abs=2e-3)
    assert metrics["trainable_parameters"] == parent["trainable_parameters"]
    assert metrics["eval_loss"] != pytest.approx(metrics["eval_loss_before"])
    run = json.loads((client.app.state.settings.jobs_dir / job["id"] / "run.json").read_text())
    assert run["merge_adapters"] == [] and run["continue_adapter"].endswith(
        f"{tuned['id']}/adapter"
    )


def _export(job_dir, jobs_db):
    """As the job runner runs it: a step process (gptqmodel never enters the pytest process)."""
    command = [sys.executable, "-m", "api.finetune.export", str(job_dir), "--db", str(jobs_db)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((job_dir / "export" / "result.json").read_text())
