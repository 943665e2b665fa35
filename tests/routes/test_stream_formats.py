"""How /generate and /v1/chat/completions frame a reply and a failure, against FakeServer:
an error before the first chunk is an HTTP status (problem details, or OpenAI's envelope on
/v1); one after it is in-band (a last NDJSON error line; an SSE error frame, then [DONE])."""

import json

import pytest

from api.errors import InvalidInput
from tests.utils.fake_server import FakeServer, fake_app

MESSAGE = "The model server stopped answering mid-reply; try again."


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def client(tmp_path, monkeypatch, fake):
    with fake_app(tmp_path, monkeypatch, fake) as c:
        yield c


def ndjson(client, **body):
    with client.stream(
        "POST", "/generate", json={"model": "tiny", "prompt": "Hi", "stream": True, **body}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r.iter_lines() if line]


def sse(client, **body):
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "tiny",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
            **body,
        },
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        frames = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames[:-1]]


def test_a_whole_reply_is_one_body_with_the_counts(client, fake):
    r = client.post("/generate", json={"model": "tiny", "prompt": "Hi", "system": "Be brief."})
    assert r.status_code == 200
    body = r.json()
    assert (body["response"], body["done_reason"], body["completion_tokens"]) == (
        "Ahoy there matey",
        "stop",
        3,
    )
    [(name, messages, options)] = fake.chats
    assert name == "tiny"
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert options["max_tokens"] == 512  # the default when the request sets none


def test_ndjson_stream_ends_with_done_and_the_counts(client):
    lines = ndjson(client)
    assert [line["response"] for line in lines] == ["Ahoy", " there", " matey", ""]
    assert [line["done"] for line in lines] == [False, False, False, True]
    assert (lines[-1]["done_reason"], lines[-1]["completion_tokens"]) == ("stop", 3)


def test_a_mid_stream_failure_is_the_last_ndjson_line(client, fake):
    fake.fail_after = 2
    lines = ndjson(client)
    assert [line.get("response") for line in lines[:2]] == ["Ahoy", " there"]
    assert lines[-1] == {"model": "tiny", "error": MESSAGE, "done": True}
    assert len(lines) == 3


def test_sse_stream_has_role_deltas_finish_and_usage(client):
    chunks = sse(client, stream_options={"include_usage": True})
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Ahoy there matey"
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "stop" and set(finish[:-1]) == {None}
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_a_mid_stream_failure_is_an_openai_error_frame_then_done(client, fake):
    fake.fail_after = 1
    chunks = sse(client)
    assert chunks[1]["choices"][0]["delta"] == {"content": "Ahoy"}
    assert chunks[-1] == {"error": {"message": MESSAGE, "type": "api_error"}}
    assert len(chunks) == 3  # role, one delta, the error


@pytest.mark.parametrize("stream", [False, True])
def test_a_failure_before_the_first_chunk_is_an_http_status(client, fake, stream):
    fake.fail_after = 0
    r = client.post("/generate", json={"model": "tiny", "prompt": "Hi", "stream": stream})
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == MESSAGE
    r = client.post(
        "/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "stream": stream},
    )
    assert r.status_code == 503
    assert r.json()["error"]["message"] == MESSAGE


def test_a_prompt_that_does_not_fit_is_422_on_both_routes(client, fake):
    fake.fail_after = 0
    fake.error = InvalidInput("The prompt needs 9000 tokens; the context window holds 8192.")
    r = client.post("/generate", json={"model": "tiny", "prompt": "Hi"})
    assert (r.status_code, r.json()["detail"]) == (422, fake.error.detail)
    r = client.post(
        "/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert r.status_code == 422
    assert r.json()["error"]["message"] == fake.error.detail
