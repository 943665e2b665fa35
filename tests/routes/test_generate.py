"""POST /generate with the real SmolLM2-135M GGUF served by llama.cpp in-process."""

import json

import pytest

from tests.utils.prompts import CAPITAL

GREEDY = {"temperature": 0, "max_tokens": 60}
HELPFUL = "You are a helpful assistant."
PERSONA = "You are Zorblat, an assistant made by Acme Corp."


@pytest.fixture
def helper(client):
    assert (
        client.post("/createModel", json={"name": "helper", "system_prompt": HELPFUL}).status_code
        == 201
    )
    return "helper"


def test_generate_answers_with_paris(client, helper):
    r = client.post("/generate", json={"model": helper, "prompt": CAPITAL, "options": GREEDY})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "paris" in body["response"].lower()
    assert body["done"] is True
    assert body["done_reason"] == "stop"
    assert body["completion_tokens"] > 0
    assert body["prompt_tokens"] > 0


def test_streamed_generation_matches_the_whole_answer(client, helper):
    request = {"model": helper, "prompt": CAPITAL, "options": GREEDY}
    whole = client.post("/generate", json=request).json()["response"]
    with client.stream("POST", "/generate", json={**request, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert len(lines) > 2  # token by token, not one blob
    assert all(not line["done"] for line in lines[:-1])
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    assert "".join(line["response"] for line in lines) == whole


def test_system_prompt_changes_behaviour(client):
    client.post("/createModel", json={"name": "zorblat", "system_prompt": PERSONA})
    ask = {"prompt": "Who are you?", "options": GREEDY}
    persona = client.post("/generate", json={"model": "zorblat", **ask}).json()["response"]
    base = client.post("/generate", json={"model": "smollm2-135m", **ask}).json()["response"]
    assert "zorblat" in persona.lower()
    assert "zorblat" not in base.lower()
    # a per-request system prompt overrides the variant's
    other = client.post("/generate", json={"model": "zorblat", "system": HELPFUL, **ask}).json()
    assert "zorblat" not in other["response"].lower()


def test_variant_default_options_apply_and_requests_override_them(client):
    client.post(
        "/createModel",
        json={
            "name": "short",
            "system_prompt": HELPFUL,
            "parameters": {"max_tokens": 3, "temperature": 0},
        },
    )
    prompt = "Write a long story about a dragon."
    r = client.post("/generate", json={"model": "short", "prompt": prompt}).json()
    assert r["completion_tokens"] == 3 and r["done_reason"] == "length"
    r = client.post(
        "/generate", json={"model": "short", "prompt": prompt, "options": {"max_tokens": 8}}
    ).json()
    assert r["completion_tokens"] == 8


def test_seed_makes_sampling_reproducible(client, helper):
    request = {
        "model": helper,
        "prompt": "Name a colour.",
        "options": {"temperature": 1.0, "seed": 42, "max_tokens": 20},
    }
    first = client.post("/generate", json=request).json()["response"]
    second = client.post("/generate", json=request).json()["response"]
    assert first == second


def test_stop_strings_end_the_reply(client, helper):
    r = client.post(
        "/generate",
        json={"model": helper, "prompt": CAPITAL, "options": {**GREEDY, "stop": ["Paris"]}},
    ).json()
    assert "Paris" not in r["response"]
    assert r["done_reason"] == "stop"


def test_generate_unknown_model_is_404_listing_models(client):
    r = client.post("/generate", json={"model": "nope", "prompt": "hi"})
    assert r.status_code == 404
    assert r.json()["detail"] == "Model 'nope' not found. Available models: smollm2-135m."


@pytest.mark.parametrize("prompt", ["", "   \n"])
def test_generate_empty_prompt_is_422(client, prompt):
    r = client.post("/generate", json={"model": "smollm2-135m", "prompt": prompt})
    assert r.status_code == 422
    assert r.json()["detail"] == "The prompt is empty: send some text to answer."


@pytest.mark.parametrize(
    "options, field",
    [
        ({"temperature": -1}, "options.temperature"),
        ({"temperature": 1e9}, "options.temperature"),
        ({"top_p": 0}, "options.top_p"),
        ({"top_k": -5}, "options.top_k"),
        ({"max_tokens": 0}, "options.max_tokens"),
        ({"max_tokens": "lots"}, "options.max_tokens"),
        ({"stop": ["x"] * 9}, "options.stop"),
        ({"stop": [""]}, "options.stop"),
        ({"seed": -7}, "options.seed"),
        ({"mirostat": 2}, "options.mirostat"),
    ],
)
def test_generate_absurd_options_are_422(client, options, field):
    r = client.post("/generate", json={"model": "smollm2-135m", "prompt": "hi", "options": options})
    assert r.status_code == 422
    assert field in r.json()["detail"]


def test_generate_max_tokens_over_the_server_limit_is_422(make_client):
    client = make_client(max_tokens_limit=100)
    r = client.post(
        "/generate", json={"model": "smollm2-135m", "prompt": "hi", "options": {"max_tokens": 101}}
    )
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "max_tokens=101 is over this server's limit of 100; ask for fewer tokens."
    )


def test_prompt_longer_than_the_limit_is_422(make_client):
    client = make_client(max_prompt_chars=50)
    r = client.post("/generate", json={"model": "smollm2-135m", "prompt": "x" * 51})
    assert r.status_code == 422
    assert "longer than 50 characters" in r.json()["detail"]


def test_prompt_that_overflows_the_context_window_is_422(make_client):
    client = make_client(context_length=256)
    r = client.post("/generate", json={"model": "smollm2-135m", "prompt": "word " * 400})
    assert r.status_code == 422
    assert "does not fit the context window of 256 tokens" in r.json()["detail"]
    # the server is still usable afterwards
    ok = client.post(
        "/generate", json={"model": "smollm2-135m", "prompt": "Hi", "options": {"max_tokens": 5}}
    )
    assert ok.status_code == 200


def test_corrupt_model_file_is_503_and_the_server_stays_up(make_client, settings, tmp_path):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(
        settings.models_dir / "smollm2-135m", models / "broken", ignore=shutil.ignore_patterns("hf")
    )
    (models / "broken" / "model.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    shutil.copytree(
        settings.models_dir / "smollm2-135m",
        models / "smollm2-135m",
        ignore=shutil.ignore_patterns("hf"),
    )
    client = make_client(base_models_dir=models)
    r = client.post("/generate", json={"model": "broken", "prompt": "hi"})
    assert r.status_code == 503
    assert r.json()["detail"].startswith("Could not load 'broken'")
    ok = client.post(
        "/generate", json={"model": "smollm2-135m", "prompt": "hi", "options": {"max_tokens": 3}}
    )
    assert ok.status_code == 200


def test_loaded_models_are_bounded(make_client, settings, tmp_path):
    import shutil

    models = tmp_path / "models"
    for name in ("one", "two"):
        shutil.copytree(
            settings.models_dir / "smollm2-135m", models / name, ignore=shutil.ignore_patterns("hf")
        )
    client = make_client(base_models_dir=models, max_loaded_models=1)
    for name in ("one", "two"):
        r = client.post(
            "/generate", json={"model": name, "prompt": "hi", "options": {"max_tokens": 2}}
        )
        assert r.status_code == 200
    assert client.get("/health").json()["server"]["loaded"] == ["two"]
