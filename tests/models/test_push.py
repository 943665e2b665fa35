"""POST /models/{name}/push: a push job against a local stand-in for the Hub API."""

import pytest

from api.models.registry import Variant
from tests.utils.hub_double import HubDouble
from tests.utils.jobs import wait_for
from tests.utils.net import free_port

KEY = "push-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
TOKEN = "hf_test_write_token"
GGUF = b"GGUF" + bytes(range(64))


@pytest.fixture
def hub():
    double = HubDouble().start()
    yield double
    double.stop()


def _client(make_client, **settings):
    client = make_client(api_key=KEY, **settings)
    client.headers.update(AUTH)
    return client


def _tuned(client):
    """A fine-tuned model: its job (spec and metrics) and the export and adapter it left."""
    store = client.app.state.job_store
    settings = client.app.state.settings
    spec = {"base_model": "smollm2-135m", "lora_r": 8, "learning_rate": 0.01, "max_steps": 4}
    job = store.create(
        model_name="pirate", base_model="smollm2-135m", spec=spec, jobs_dir=settings.jobs_dir
    )
    store.set_metrics(job.id, {"eval_loss": 1.25, "perplexity": 3.49, "rouge": {"rougeL": 0.41}})
    (job.job_dir / "export").mkdir(parents=True)
    (job.job_dir / "adapter").mkdir()
    (job.job_dir / "export" / "model-Q4_K_M.gguf").write_bytes(GGUF)
    (job.job_dir / "export" / "result.json").write_text("{}")
    (job.job_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"lora weights")
    (job.job_dir / "adapter" / "adapter_config.json").write_text('{"r": 8}')
    client.app.state.registry.add(
        Variant(
            name="pirate",
            base_model="smollm2-135m",
            gguf_path=str(job.job_dir / "export" / "model-Q4_K_M.gguf"),
        )
    )


def test_push_uploads_the_gguf_adapter_and_a_card_with_the_token(make_client, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    client = _client(make_client, hf_endpoint=hub.url)
    _tuned(client)
    r = client.post("/models/pirate/push", json={"repo_id": "me/pirate"})
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "push" and r.json()["object"] == "push.job"
    assert TOKEN not in r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=30)
    assert job["status"] == "succeeded", job["error"]
    repo = hub.repos["me/pirate"]
    assert repo["private"] is True
    assert repo["files"]["export/model-Q4_K_M.gguf"] == GGUF
    assert repo["files"]["adapter/adapter_model.safetensors"] == b"lora weights"
    assert "export/result.json" not in repo["files"]
    card = repo["files"]["README.md"].decode()
    assert "`smollm2-135m` fine-tuned with LoRA on local-llm-platform" in card
    assert "| lora_r | 8 |" in card and "| perplexity | 3.49 |" in card
    assert "| rouge.rougeL | 0.41 |" in card and "library_name: peft" in card
    assert set(hub.tokens) == {f"Bearer {TOKEN}"}
    assert job["metrics"]["commit"] == "a" * 40
    assert "README.md" in job["metrics"]["files"]

    # chosen files, public, an existing repo (409 from the Hub is fine: exist_ok)
    r = client.post(
        "/models/pirate/push",
        json={"repo_id": "me/pirate", "private": False, "files": ["export/result.json"]},
    )
    again = wait_for(client, r.json()["id"], ("succeeded", "failed"), 30)
    assert again["status"] == "succeeded", again["error"]
    assert repo["files"]["export/result.json"] == b"{}"
    r = client.post("/models/pirate/push", json={"repo_id": "me/open", "private": False})
    assert wait_for(client, r.json()["id"], ("succeeded",), 30)
    assert hub.repos["me/open"]["private"] is False


def test_bad_requests_get_422_naming_what_to_fix(make_client, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    client = _client(make_client, hf_endpoint=hub.url)
    _tuned(client)
    bad_repo = client.post("/models/pirate/push", json={"repo_id": "../x"})
    assert bad_repo.status_code == 422 and "repo_id" in bad_repo.text
    unknown = client.post(
        "/models/pirate/push", json={"repo_id": "me/p", "files": ["../../secret"]}
    )
    assert unknown.status_code == 422
    assert "'../../secret'" in unknown.json()["detail"]
    assert "export/model-Q4_K_M.gguf" in unknown.json()["detail"]
    missing = client.post("/models/nobody/push", json={"repo_id": "me/p"})
    assert missing.status_code == 404
    wrong = {"Authorization": "Bearer wrong-key"}
    assert (
        client.post("/models/pirate/push", json={"repo_id": "me/p"}, headers=wrong).status_code
        == 401
    )
    assert hub.calls == []


def test_without_hf_token_the_push_is_refused_at_submit(make_client, hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    client = _client(make_client, hf_endpoint=hub.url)
    _tuned(client)
    r = client.post("/models/pirate/push", json={"repo_id": "me/pirate"})
    assert r.status_code == 409
    assert "set HF_TOKEN" in r.json()["detail"]
    assert all(j["kind"] != "push" for j in client.get("/jobs").json()["data"])
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    offline = client.post("/models/pirate/push", json={"repo_id": "me/pirate"})
    assert offline.status_code == 409 and "HF_HUB_OFFLINE" in offline.json()["detail"]
    assert hub.calls == []


def test_a_refusing_or_unreachable_hub_fails_the_job_with_the_reason(make_client, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.refuse = (403, "You don't have the rights to create a model under the namespace me")
    client = _client(make_client, hf_endpoint=hub.url)
    _tuned(client)
    r = client.post("/models/pirate/push", json={"repo_id": "me/pirate"})
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=30)
    assert job["status"] == "failed"
    assert "refused the push: HTTP 403" in job["error"]
    assert "don't have the rights" in job["error"]

    closed = f"http://127.0.0.1:{free_port()}"
    other = _client(
        make_client, hf_endpoint=closed, data_dir=client.app.state.settings.data_dir.parent / "d2"
    )
    _tuned(other)
    r = other.post("/models/pirate/push", json={"repo_id": "me/pirate"})
    job = wait_for(other, r.json()["id"], ("succeeded", "failed"), timeout=60)
    assert job["status"] == "failed"
    assert f"The Hub at {closed} could not be reached" in job["error"]
