"""The whole app with LLM_BACKEND=ollama, over HTTP, against the Ollama protocol double."""

import json

from tests.utils.net import free_port
from tests.utils.ollama_app import app_client


def test_create_generate_delete_through_http(tmp_path, double):
    with app_client(tmp_path, double.url) as client:
        health = client.get("/health").json()
        assert health["backend"] == "ollama"
        assert health["server"] == {"ollama_url": double.url, "reachable": True, "models": []}

        r = client.post(
            "/createModel",
            json={"name": "pirate", "system_prompt": "Arr.", "parameters": {"temperature": 0.3}},
        )
        assert r.status_code == 201, r.text
        assert double.models["llmp/pirate:latest"]["from"] == "llmp/tiny:latest"
        assert double.models["llmp/pirate:latest"]["parameters"] == {"temperature": 0.3}

        r = client.post(
            "/generate",
            json={"model": "pirate", "prompt": "Hello there", "options": {"max_tokens": 8}},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["response"], body["done_reason"]) == ("Ahoy there matey", "stop")
        assert (body["prompt_tokens"], body["completion_tokens"]) == (3, 3)
        sent = double.calls("POST", "/api/chat")[-1]
        assert sent["messages"][0] == {"role": "system", "content": "Arr."}
        assert sent["options"]["num_predict"] == 8 and sent["options"]["temperature"] == 0.3

        r = client.delete("/deleteModel", params={"name": "pirate"})
        assert r.status_code == 200
        assert "llmp/pirate:latest" not in double.models
        assert [m["name"] for m in client.get("/listModels").json()["data"]] == ["tiny"]


def test_a_mid_stream_error_ends_the_ndjson_stream_with_an_error_line(tmp_path, double):
    with app_client(tmp_path, double.url) as client:
        double.error_after = 1
        r = client.post("/generate", json={"model": "tiny", "prompt": "x", "stream": True})
        assert r.status_code == 200
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert lines[0]["response"] == "Ahoy "
        assert lines[-1]["done"] is True
        assert lines[-1]["error"].startswith("Ollama reported an error during chat with 'tiny'")


def test_a_jinja_template_is_422_on_the_ollama_backend(tmp_path, double):
    with app_client(tmp_path, double.url) as client:
        r = client.post(
            "/createModel", json={"name": "j", "template": "{% for m in messages %}{% endfor %}"}
        )
        assert r.status_code == 422
        assert "Go templates" in r.json()["detail"]
        assert client.get("/listModels").json()["count"] == 1


def test_ollama_down_is_a_503_problem_and_health_still_answers(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with app_client(tmp_path, url) as client:
        r = client.post("/generate", json={"model": "tiny", "prompt": "x"})
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"].startswith(f"Ollama is not reachable at {url}")
        r = client.post("/createModel", json={"name": "v"})
        assert r.status_code == 503
        assert client.get("/listModels").json()["count"] == 1  # nothing half-created
        r = client.post(
            "/v1/chat/completions",
            json={"model": "tiny", "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 503 and "not reachable" in r.json()["error"]["message"]
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["server"]["reachable"] is False
