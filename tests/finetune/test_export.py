"""Export on the tiny model: each quantisation, adapter GGUF, smoke test, retry, clean-up."""

import json
import shutil

import pytest
from gguf import GGUFReader

from api.finetune.export import export
from api.jobs.store import JobStore
from tests.utils.jobs import events, submit, wait_for
from tests.utils.tiny_model import TINY

FILE_TYPES = {"Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18, "Q8_0": 7, "F16": 1}


@pytest.fixture
def jobs_client(make_client, tiny_models_dir):
    return make_client(base_models_dir=tiny_models_dir, job_poll_seconds=0.1)


@pytest.fixture
def trained(jobs_client):
    """A finished tiny job with an adapter and no export."""
    job = submit(jobs_client, name="trained").json()
    done = wait_for(jobs_client, job["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    return jobs_client, done


def _field(reader: GGUFReader, key: str):
    field = reader.fields[key]
    return field.contents()


def test_every_quantisation_type_is_written_with_template_and_eos(trained):
    client, job = trained
    job_dir = client.app.state.settings.jobs_dir / job["id"]
    (job_dir / "export.json").write_text(
        json.dumps({"export": "merged", "quantization": list(FILE_TYPES)})
    )
    result = export(job_dir, JobStore(client.app.state.settings.jobs_db))
    assert result["serve"] == {"gguf": "model-Q4_K_M.gguf"}
    assert set(result["files"]) == set(FILE_TYPES)
    for kind, file_type in FILE_TYPES.items():
        reader = GGUFReader(job_dir / "export" / result["files"][kind])
        assert _field(reader, "general.file_type") == file_type, kind
        assert "<|im_start|>" in _field(reader, "tokenizer.chat_template")
        assert _field(reader, "tokenizer.ggml.eos_token_id") == 2
    assert {"merge_s", "convert_s", "quantize_Q4_K_M_s"} <= result["timings"].keys()
    assert not (job_dir / "export.partial").exists()


def test_adapter_export_loads_on_the_base_gguf(trained):
    from api.serving.llama_model import open_llama

    client, job = trained
    settings = client.app.state.settings
    job_dir = settings.jobs_dir / job["id"]
    (job_dir / "export.json").write_text(json.dumps({"export": "adapter"}))
    result = export(job_dir, JobStore(settings.jobs_db))
    adapter = job_dir / "export" / "adapter.gguf"
    assert result["serve"] == {"adapter": "adapter.gguf"}
    assert _field(GGUFReader(adapter), "general.type") == "adapter"
    base = settings.models_dir / TINY / "model.gguf"
    llm = open_llama(base, lora_path=str(adapter), n_ctx=128, verbose=False)
    assert llm.create_completion("hi", max_tokens=2)["usage"]["completion_tokens"] >= 1


def test_smoke_test_fails_a_model_that_never_stops(jobs_client):
    job = submit(jobs_client, name="runaway", export="merged", quantization="Q8_0").json()
    done = wait_for(jobs_client, job["id"], ("succeeded", "failed"))
    assert done["status"] == "failed"
    assert done["error"].startswith(
        "Export failed: Smoke test failed: the model did not stop within 256 tokens"
    )
    types = [e["type"] for e in events(jobs_client, job["id"])]
    assert "exporting" in types and types[-1] == "error"
    names = [m["name"] for m in jobs_client.get("/listModels").json()["data"]]
    assert "runaway" not in names
    job_dir = jobs_client.app.state.settings.jobs_dir / job["id"]
    assert (job_dir / "adapter" / "adapter_model.safetensors").is_file()  # kept for a retry
    assert not (job_dir / "export").exists() and not (job_dir / "export.partial").exists()


def test_export_retry_is_a_new_job_on_the_same_adapter(trained):
    client, job = trained
    r = client.post(
        f"/jobs/{job['id']}/export", json={"export": "adapter", "model_name": "retry-lora"}
    )
    assert r.status_code == 202, r.text
    retry = r.json()
    assert retry["kind"] == "export" and retry["id"] != job["id"]
    assert retry["model_name"] == "retry-lora"
    assert retry["progress"] == {"source_job": job["id"]}
    done = wait_for(client, retry["id"], ("succeeded", "failed"))
    # the tiny random model never stops, so the smoke test fails it: the point here is the flow
    assert done["status"] == "failed" and "Smoke test failed" in done["error"]
    messages = [e["message"] for e in events(client, retry["id"])]
    assert "Converting the LoRA adapter to GGUF." in messages
    assert "Training started." not in " ".join(messages)
    assert client.get(f"/jobs/{job['id']}").json()["status"] == "succeeded"  # source unchanged


def test_export_bad_requests(trained, jobs_client):
    client, job = trained
    assert client.post("/jobs/ftjob-nope/export", json={}).status_code == 404
    r = client.post(f"/jobs/{job['id']}/export", json={"export": "zip"})
    assert r.status_code == 422
    r = client.post(f"/jobs/{job['id']}/export", json={"model_name": TINY})
    assert r.status_code == 409
    cancelled = submit(client, name="never", max_steps="400").json()
    client.post(f"/jobs/{cancelled['id']}/cancel")
    r = client.post(f"/jobs/{cancelled['id']}/export", json={})
    assert r.status_code == 409
    assert "has no trained adapter" in r.json()["detail"]


def test_create_model_refuses_a_name_an_active_job_will_produce(jobs_client):
    job = submit(jobs_client, name="reserved", max_steps="400").json()
    r = jobs_client.post("/createModel", json={"name": "reserved"})
    assert r.status_code == 409
    assert "A fine-tuning job is producing a model named 'reserved'" in r.json()["detail"]
    jobs_client.post(f"/jobs/{job['id']}/cancel")


def test_deleting_a_model_deletes_its_export_files(client, settings, base_models_dir):
    from api.models.registry import Variant

    export_dir = settings.jobs_dir / "ftjob-x" / "export"
    export_dir.mkdir(parents=True)
    shutil.copy(base_models_dir / "smollm2-135m" / "model.gguf", export_dir / "model-Q4_K_M.gguf")
    client.app.state.registry.add(
        Variant(
            name="exported",
            base_model="smollm2-135m",
            gguf_path=str(export_dir / "model-Q4_K_M.gguf"),
        )
    )
    r = client.post(
        "/generate", json={"model": "exported", "prompt": "hi", "options": {"max_tokens": 2}}
    )
    assert r.status_code == 200
    assert client.delete("/deleteModel", params={"name": "exported"}).status_code == 200
    assert not export_dir.exists()
    assert (base_models_dir / "smollm2-135m" / "model.gguf").is_file()
