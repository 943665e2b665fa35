"""The API key guards every route but /health when it is set."""

import re

import pytest

from api.auth import OPEN_PATHS

KEY = "test-key-0123456789abcdef"


@pytest.fixture
def guarded(make_client):
    return make_client(api_key=KEY)


def _operations(app):
    """Every method of every route the app has, in the schema or not; path parameters `x`.
    (FastAPI keeps an included router's routes in the router, not in `app.routes`.)"""

    def walk(routes):
        for route in routes:
            if hasattr(route, "original_router"):
                yield from walk(route.original_router.routes)
            else:
                yield route

    for route in walk(app.routes):
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                yield method, re.sub(r"\{[^}]+\}", "x", route.path)


def test_every_route_but_health_needs_the_key(guarded):
    operations = list(_operations(guarded.app))
    documented = {
        (m.upper(), re.sub(r"\{[^}]+\}", "x", p))
        for p, item in guarded.get("/openapi.json").json()["paths"].items()
        for m in item
    }
    assert documented <= set(operations)  # new routes are walked without editing this test
    assert len(operations) >= 20
    for method, path in operations:
        r = guarded.request(method, path)
        if path in OPEN_PATHS:
            assert r.status_code == 200, (method, path)
            continue
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"] == "Bearer"


def test_the_key_is_checked_before_the_body_is_read(guarded):
    # FastAPI parses bodies before dependencies run: without the gate in front, these would
    # be 422/400 answers about the anonymous client's body (and its upload spooled to disk).
    r = guarded.post(
        "/generate", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 401
    r = guarded.post(
        "/fine_tune_model", content=b"x" * 100_000, headers={"content-type": "multipart/form-data"}
    )
    assert r.status_code == 401
    assert r.json()["detail"] == "Missing API key: send `Authorization: Bearer <LLM_API_KEY>`."
    r = guarded.post("/v1/chat/completions", content=b"[", headers={"Authorization": "Bearer no"})
    assert (r.status_code, r.json()["error"]["type"]) == (401, "authentication_error")
    assert guarded.get("/no-such-route").status_code == 401  # no probing for routes either


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
