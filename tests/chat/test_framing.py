"""How /generate and /v1/chat/completions frame one chat, with a fake backend swapped in:
NDJSON lines, SSE frames ending in `[DONE]`, and the in-band error after the status line."""

import json

import pytest

from tests.chat.test_chat_service import fake_server

ASK = {"model": "smollm2-135m"}


def swap(client, server):
    """Serve with `server` until the test ends; the app then closes its own server."""
    real, client.app.state.server = client.app.state.server, server
    yield client
    client.app.state.server = real


@pytest.fixture
def fake(client):
    yield from swap(client, fake_server(fail_after=1))


@pytest.fixture
def fine(client):
    yield from swap(client, fake_server())


def test_ndjson_reports_a_late_error_as_its_last_line(fake):
    r = fake.post("/generate", json={**ASK, "prompt": "hi", "stream": True})
    assert r.status_code == 200
    assert [json.loads(line) for line in r.text.splitlines()] == [
        {"model": "smollm2-135m", "response": "a", "done": False},
        {"model": "smollm2-135m", "error": "backend went away", "done": True},
    ]


def test_sse_reports_a_late_error_then_done(fake):
    r = fake.post(
        "/v1/chat/completions",
        json={**ASK, "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    assert r.status_code == 200
    frames = [line.removeprefix("data: ") for line in r.text.splitlines() if line]
    assert [json.loads(f)["choices"][0]["delta"] for f in frames[:2]] == [
        {"role": "assistant", "content": ""},
        {"content": "a"},
    ]
    assert json.loads(frames[2]) == {"error": {"message": "backend went away", "type": "api_error"}}
    assert frames[3:] == ["[DONE]"]


def test_whole_answers_report_a_late_error_as_an_error_response(fake):
    r = fake.post("/generate", json={**ASK, "prompt": "hi"})
    assert (r.status_code, r.json()["detail"]) == (503, "backend went away")
    r = fake.post(
        "/v1/chat/completions", json={**ASK, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert (r.status_code, r.json()["error"]["message"]) == (503, "backend went away")


def test_a_finished_stream_carries_usage_on_both_surfaces(fine):
    client = fine
    lines = client.post("/generate", json={**ASK, "prompt": "hi", "stream": True}).text
    assert json.loads(lines.splitlines()[-1]) == {
        "model": "smollm2-135m",
        "response": "",
        "done": True,
        "done_reason": "stop",
        "prompt_tokens": 3,
        "completion_tokens": 2,
    }
    r = client.post(
        "/v1/chat/completions",
        json={
            **ASK,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    frames = [
        json.loads(line.removeprefix("data: "))
        for line in r.text.splitlines()
        if line and line != "data: [DONE]"
    ]
    assert frames[-2]["choices"][0]["finish_reason"] == "stop"
    assert "sources" not in frames[-2]
    assert frames[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
