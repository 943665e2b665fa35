"""Ollama library models as bases, through the whole app (LLM_BACKEND=ollama) and the double."""

from datetime import datetime

import pytest

from api.config import Settings
from api.errors import Unavailable
from api.serving.base import ServedModel
from api.serving.ollama import OllamaServer
from tests.utils.net import free_port
from tests.utils.ollama_app import app_client

LLAMA = "llama3.2:3b"  # what `ollama pull llama3.2:3b` (or OLLAMA_BASE_MODEL) leaves in Ollama


@pytest.fixture
def client(tmp_path, double):
    double.pull(LLAMA, family="llama")
    with app_client(tmp_path, double.url) as c:
        yield c


def models(client) -> dict[str, dict]:
    listed = client.get("/listModels").json()
    assert listed["count"] == len(listed["data"])
    return {m["name"]: m for m in listed["data"]}


def test_a_pulled_model_is_listed_as_a_base_with_its_ollama_name(client, double):
    listed = models(client)
    assert set(listed) == {"tiny", "llama3.2-3b"}
    base = listed["llama3.2-3b"]
    assert (base["kind"], base["source"], base["ollama_model"]) == ("base", "ollama", LLAMA)
    pulled = datetime.fromisoformat(double.models[LLAMA]["modified_at"])
    assert base["created_at"] == pulled.isoformat(timespec="seconds")
    assert listed["tiny"]["ollama_model"] is None
    v1 = {m["id"]: m["owned_by"] for m in client.get("/v1/models").json()["data"]}
    assert v1 == {"tiny": "system", "llama3.2-3b": "system"}
    assert client.get("/health").json()["base_models"] == ["tiny", "llama3.2-3b"]


def test_our_own_ollama_models_are_not_listed_twice(client, double):
    assert client.post("/createModel", json={"name": "pirate"}).status_code == 201
    assert {"llmp/tiny:latest", "llmp/pirate:latest"} <= set(double.models)
    listed = models(client)
    assert sorted(listed) == ["llama3.2-3b", "pirate", "tiny"]
    assert listed["pirate"]["kind"] == "variant"


def test_a_variant_of_a_library_base_is_created_from_it_and_answers(client, double):
    r = client.post(
        "/createModel",
        json={
            "name": "hr-bot",
            "base_model": "llama3.2-3b",
            "system_prompt": "You answer HR.",
            "template": "{{ .System }} {{ .Prompt }}",
            "parameters": {"temperature": 0.2},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["base_model"] == "llama3.2-3b"
    created = double.models["llmp/hr-bot:latest"]
    assert created["from"] == LLAMA
    assert (created["system"], created["parameters"]) == ("You answer HR.", {"temperature": 0.2})
    assert created["template"] == "{{ .System }} {{ .Prompt }}"
    assert "files" not in created and double.blobs == {}  # nothing of ours was uploaded

    r = client.post("/generate", json={"model": "hr-bot", "prompt": "Holidays?"})
    assert r.status_code == 200, r.text
    assert r.json()["response"] == "Ahoy there matey"
    sent = double.calls("POST", "/api/chat")[-1]
    assert sent["model"] == "llmp/hr-bot:latest"
    assert sent["messages"][0] == {"role": "system", "content": "You answer HR."}


def test_the_library_base_itself_answers_under_its_ollama_name(client, double):
    r = client.post("/generate", json={"model": "llama3.2-3b", "prompt": "Hi"})
    assert r.status_code == 200, r.text
    assert double.calls("POST", "/api/chat")[-1]["model"] == LLAMA
    r = client.post(
        "/v1/chat/completions",
        json={"model": "llama3.2-3b", "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Ahoy there matey"
    assert double.calls("POST", "/api/chat")[-1]["model"] == LLAMA
    assert not [b for b in double.calls("POST", "/api/create")]  # nothing created for it


def test_a_variant_of_a_library_base_streams_on_the_openai_route(client, double):
    client.post("/createModel", json={"name": "hr-bot", "base_model": "llama3.2-3b"})
    r = client.post(
        "/v1/chat/completions",
        json={"model": "hr-bot", "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert r.status_code == 200
    frames = [line for line in r.text.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "data: [DONE]"
    assert double.calls("POST", "/api/chat")[-1]["model"] == "llmp/hr-bot:latest"


def test_a_variant_recreated_in_ollama_from_its_library_base_after_a_wipe(client, double):
    client.post(
        "/createModel", json={"name": "hr-bot", "base_model": "llama3.2-3b", "system_prompt": "HR."}
    )
    del double.models["llmp/hr-bot:latest"]  # Ollama's volume lost our model, not the pull
    r = client.post("/generate", json={"model": "hr-bot", "prompt": "Hi"})
    assert r.status_code == 200, r.text
    assert double.models["llmp/hr-bot:latest"]["from"] == LLAMA


def test_deleting_a_library_base_is_409_and_leaves_it_in_ollama(client, double):
    r = client.delete("/deleteModel", params={"name": "llama3.2-3b"})
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "'llama3.2-3b' is Ollama's model 'llama3.2:3b', not one this "
        "API created; remove it from Ollama (`ollama rm llama3.2:3b`)."
    )
    assert LLAMA in double.models and double.calls("DELETE", "/api/delete") == []


def test_a_variant_name_cannot_take_a_library_base_name(client):
    r = client.post("/createModel", json={"name": "llama3.2-3b"})
    assert r.status_code == 409
    assert "is the name of a base model" in r.json()["detail"]


def test_a_variant_keeps_its_name_when_a_model_of_that_name_is_pulled_later(client, double):
    assert client.post("/createModel", json={"name": "qwen"}).status_code == 201
    double.pull("qwen:latest", family="qwen2")
    listed = models(client)
    assert listed["qwen"]["kind"] == "variant"
    client.post("/generate", json={"model": "qwen", "prompt": "Hi"})
    assert double.calls("POST", "/api/chat")[-1]["model"] == "llmp/qwen:latest"
    assert client.delete("/deleteModel", params={"name": "qwen"}).status_code == 200
    assert "qwen:latest" in double.models  # the pulled model is not ours to delete
    assert models(client)["qwen"]["source"] == "ollama"


def test_a_library_base_ollama_lost_is_503_saying_pull_it_again(client, double):
    served = ServedModel(name="llama3.2-3b", gguf_path=None, ollama_base=LLAMA)
    del double.models[LLAMA]  # `ollama rm` between our listing and the chat
    server: OllamaServer = client.app.state.server
    with pytest.raises(Unavailable) as info:
        list(server.chat(served, [{"role": "user", "content": "x"}], {}))
    assert info.value.detail == (
        "Ollama no longer has 'llama3.2:3b'; pull it again "
        "(`ollama pull llama3.2:3b`) or pick another model."
    )
    assert double.calls("POST", "/api/create") == []
    r = client.post("/generate", json={"model": "llama3.2-3b", "prompt": "Hi"})
    assert r.status_code == 404  # no longer listed either
    assert r.json()["detail"] == "Model 'llama3.2-3b' not found. Available models: tiny."


def test_with_ollama_down_the_list_still_shows_our_models(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with app_client(tmp_path, url) as client:
        assert list(models(client)) == ["tiny"]
        r = client.post("/generate", json={"model": "llama3.2-3b", "prompt": "Hi"})
        assert r.status_code == 503 and "not reachable" in r.json()["detail"]


def test_the_llamacpp_backend_lists_no_library_and_refuses_a_library_model(tmp_path):
    from api.serving.llamacpp import LlamaCppServer

    server = LlamaCppServer(Settings(data_dir=tmp_path))
    assert server.library_models() == []
    with pytest.raises(
        Unavailable,
        match="served from Ollama's library \\('llama3.2:3b'\\); set LLM_BACKEND=ollama",
    ):
        server.register(ServedModel(name="x", gguf_path=None, ollama_base=LLAMA))


def test_the_double_lists_pulled_models_with_their_details(double, tmp_path):
    double.pull(LLAMA, family="llama", parameter_size="3.2B")
    server = OllamaServer(
        Settings(data_dir=tmp_path, backend="ollama", ollama_url=double.url, ollama_retries=0)
    )
    [model] = server.library_models()
    assert (model.name, model.ollama_model, model.family, model.parameter_size) == (
        "llama3.2-3b",
        LLAMA,
        "llama",
        "3.2B",
    )
    server.close()
