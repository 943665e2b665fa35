"""Q4_0 export end to end on the real SmolLM2 (export only: the adapter is PEFT's initial
LoRA, whose zero B matrices leave the base unchanged, so no training time is spent): merge,
convert, quantise to Q4_0, the smoke test on the served Q4_0 file, and an answer from it."""

import json

import pytest

from api.finetune.quant_types import file_type
from api.finetune.spec import FineTuneSpec
from tests.finetune.test_quant_types import gguf_file_type
from tests.utils.jobs import wait_for

BASE = "smollm2-135m"


def finished_job_with_an_adapter(client) -> str:
    """A succeeded fine_tune job whose adapter/ holds an untrained LoRA on SmolLM2."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = client.app.state.settings
    store = client.app.state.job_store
    spec = FineTuneSpec(model_name="smol-source", base_model=BASE, export="none")
    job = store.create(
        model_name=spec.model_name,
        base_model=BASE,
        spec=spec.model_dump(mode="json"),
        jobs_dir=settings.jobs_dir,
    )
    files = job.files
    files.data.mkdir(parents=True)
    files.spec.write_text(json.dumps(job.spec))
    hf = settings.models_dir / BASE / "hf"
    files.run.write_text(json.dumps({"hf_dir": str(hf)}))
    files.data_file("validation").write_text(
        json.dumps(
            [
                {"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "Paris."},
            ]
        )
        + "\n"
    )
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32)
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    lora.save_pretrained(files.adapter, safe_serialization=True)
    AutoTokenizer.from_pretrained(hf).save_pretrained(files.adapter)
    assert store.transition(
        job.id, "succeeded", allowed_from=("validating_files",), message="test fixture"
    )
    return job.id


@pytest.mark.slow
def test_q4_0_export_of_smollm2_is_smoke_tested_and_served(make_client):
    client = make_client(job_poll_seconds=0.2)
    source = finished_job_with_an_adapter(client)
    r = client.post(
        f"/jobs/{source}/export",
        json={"export": "merged", "quantization": ["Q4_0", "Q8_0"], "model_name": "smol-q4"},
    )
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=900)
    assert job["status"] == "succeeded", job["error"]
    export = job["metrics"]["export"]
    assert list(export["files"]) == ["Q4_0", "Q8_0"] and export["smoke_reply"].strip()
    assert export["serve"] == {"gguf": "model-Q4_0.gguf"}  # the first type is served
    assert gguf_file_type(export["files"]["Q4_0"]) == file_type("Q4_0")
    assert export["sizes"]["Q4_0"] < export["sizes"]["Q8_0"]
    answer = client.post(
        "/generate",
        json={
            "model": "smol-q4",
            "prompt": "What is the capital of France?",
            "options": {"temperature": 0, "max_tokens": 24},
        },
    )
    assert answer.status_code == 200 and "Paris" in answer.json()["response"]


def test_a_variant_with_the_alpaca_template_answers_on_llama_cpp(client):
    """The variant-template path (llama.cpp's Jinja2ChatFormatter) stops on EOS, not on an
    empty stop string that ended every reply before its first token."""
    from api.finetune.formats import ALPACA_TEMPLATE

    r = client.post("/createModel", json={"name": "alpaca-style", "template": ALPACA_TEMPLATE})
    assert r.status_code in (200, 201), r.text
    r = client.post(
        "/generate",
        json={
            "model": "alpaca-style",
            "prompt": "What is the capital of France?",
            "options": {"temperature": 0, "max_tokens": 16},
        },
    )
    assert r.status_code == 200 and "Paris" in r.json()["response"], r.text
