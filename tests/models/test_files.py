"""Downloads: GET /models/{name}/files lists, /files/{path} streams with Range; no path tricks."""

import hashlib
import json

import pytest

from api.models.registry import Variant

KEY = "files-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def files_client(make_client):
    return make_client(api_key=KEY)


@pytest.fixture
def tuned(files_client):
    """A fine-tuned model as an export leaves it: a job directory with export/ and adapter/."""
    job = files_client.app.state.settings.jobs_dir / "ftjob-files"
    (job / "export").mkdir(parents=True)
    (job / "adapter").mkdir()
    (job / "export" / "model-Q4_K_M.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 4)
    (job / "export" / "result.json").write_text(json.dumps({"files": {}}))
    (job / "adapter" / "adapter_model.safetensors").write_bytes(b"lora")
    (job / "adapter" / "adapter_config.json").write_text("{}")
    secret = job.parent.parent / "secret.txt"
    secret.write_text("not yours")
    (job / "export" / "leak.gguf").symlink_to(secret)
    (job / "adapter" / "linked").symlink_to(secret.parent, target_is_directory=True)
    files_client.app.state.registry.add(
        Variant(
            name="tuned",
            base_model="smollm2-135m",
            gguf_path=str(job / "export" / "model-Q4_K_M.gguf"),
        )
    )
    return job


def test_a_base_lists_its_gguf_and_checkpoint_with_sizes_and_sums(files_client):
    body = files_client.get("/models/smollm2-135m/files", headers=AUTH).json()
    by_path = {f["path"]: f for f in body["data"]}
    assert by_path["model.gguf"]["kind"] == "gguf"
    assert by_path["hf/config.json"]["kind"] == "checkpoint"
    assert "base.json" not in by_path
    config = files_client.get("/models/smollm2-135m/files/hf/config.json", headers=AUTH)
    assert config.status_code == 200
    assert hashlib.sha256(config.content).hexdigest() == by_path["hf/config.json"]["sha256"]
    assert len(config.content) == by_path["hf/config.json"]["size"]
    assert body["total_bytes"] == sum(f["size"] for f in body["data"])


def test_a_fine_tuned_model_lists_gguf_result_and_peft_adapter_but_no_links(files_client, tuned):
    body = files_client.get("/models/tuned/files", headers=AUTH).json()
    kinds = {f["path"]: f["kind"] for f in body["data"]}
    assert kinds == {
        "export/model-Q4_K_M.gguf": "gguf",
        "export/result.json": "export_result",
        "adapter/adapter_config.json": "peft_adapter",
        "adapter/adapter_model.safetensors": "peft_adapter",
    }


def test_ranges_are_served_as_206_and_outside_the_file_as_416(files_client, tuned):
    url = "/models/tuned/files/export/model-Q4_K_M.gguf"
    whole = files_client.get(url, headers=AUTH)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert "model-Q4_K_M.gguf" in whole.headers["content-disposition"]
    part = files_client.get(url, headers={**AUTH, "Range": "bytes=4-13"})
    assert part.status_code == 206
    assert part.content == whole.content[4:14]
    assert part.headers["content-range"] == f"bytes 4-13/{len(whole.content)}"
    tail = files_client.get(url, headers={**AUTH, "Range": "bytes=1000-"})
    assert tail.content == whole.content[1000:]
    beyond = files_client.get(url, headers={**AUTH, "Range": "bytes=99999-"})
    assert beyond.status_code == 416


def test_downloads_need_the_key(files_client, tuned):
    assert files_client.get("/models/tuned/files").status_code == 401
    assert files_client.get("/models/tuned/files/export/result.json").status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "export/leak.gguf",  # a symbolic link out of the model
        "adapter/linked/secret.txt",  # a linked directory
        "export/%2e%2e/%2e%2e/secret.txt",
        "..%2f..%2fsecret.txt",
        "%2fetc%2fpasswd",
        "export/../spec.json",
        "hf/../base.json",
        "export/nothing.gguf",
    ],
)
def test_no_path_reaches_a_file_that_is_not_listed(files_client, tuned, path):
    r = files_client.get(f"/models/tuned/files/{path}", headers=AUTH)
    assert r.status_code == 404, r.text
    assert b"not yours" not in r.content


def test_unknown_models_and_plain_variants_answer_404_saying_why(files_client):
    r = files_client.get("/models/nope/files", headers=AUTH)
    assert r.status_code == 404 and "smollm2-135m" in r.json()["detail"]
    files_client.post(
        "/createModel",
        json={"name": "pirate", "base_model": "smollm2-135m", "system_prompt": "Arr."},
        headers=AUTH,
    )
    r = files_client.get("/models/pirate/files", headers=AUTH)
    assert r.status_code == 404
    assert "download 'smollm2-135m' instead" in r.json()["detail"]
    assert files_client.get("/models/..%2f..%2fetc/files", headers=AUTH).status_code == 404


def test_sha256_is_computed_once_per_file_version(files_client, tuned, monkeypatch):
    model_files = files_client.app.state.model_files
    files_client.get("/models/tuned/files", headers=AUTH)
    calls = []
    original = hashlib.sha256
    monkeypatch.setattr("api.models.files.hashlib.sha256", lambda: calls.append(1) or original())
    files_client.get("/models/tuned/files", headers=AUTH)
    assert calls == []
    (tuned / "export" / "result.json").write_text('{"files": {"changed": true}}')
    listed = files_client.get("/models/tuned/files", headers=AUTH).json()["data"]
    assert len(calls) == 1
    result = next(f for f in listed if f["path"] == "export/result.json")
    assert result["sha256"] == original(b'{"files": {"changed": true}}').hexdigest()
    assert model_files.hashes is files_client.app.state.model_files.hashes
