"""The API key guards every route but /health when it is set."""

import pytest

KEY = "test-key-0123456789abcdef"


@pytest.fixture
def guarded(make_client):
    return make_client(api_key=KEY)


def _operations(client):
    for path, item in client.get("/openapi.json").json()["paths"].items():
        for method in item:
            yield method.upper(), path


def test_every_route_but_health_needs_the_key(guarded):
    operations = list(_operations(guarded))
    assert len(operations) >= 6
    for method, path in operations:
        r = guarded.request(method, path)
        if path == "/health":
            assert r.status_code == 200
            continue
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"] == "Bearer"


def test_missing_and_wrong_key_messages(guarded):
    r = guarded.get("/listModels")
    assert r.json()["detail"] == "Missing API key: send `Authorization: Bearer <LLM_API_KEY>`."
    r = guarded.get("/listModels", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json()["detail"] == "Invalid API key: check the value of LLM_API_KEY."
    r = guarded.get("/listModels", headers={"Authorization": f"Basic {KEY}"})
    assert r.status_code == 401


def test_right_key_is_accepted(guarded):
    r = guarded.get("/listModels", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200


def test_openai_routes_answer_401_in_openai_envelope(guarded):
    r = guarded.get("/v1/models")
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"


def test_no_key_configured_means_open(client):
    assert client.get("/listModels").status_code == 200


def test_short_api_key_is_refused_at_start_up(tmp_path):
    from pydantic import ValidationError

    from api.config import Settings

    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(data_dir=tmp_path, api_key="short")
