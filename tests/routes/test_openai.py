"""The official openai client against /v1, in-process."""

import openai
import pytest
from openai import OpenAI

from tests.utils.prompts import CAPITAL

HELPFUL = "You are a helpful assistant."


@pytest.fixture
def oai(client):
    client.post("/createModel", json={"name": "helper", "system_prompt": HELPFUL})
    return OpenAI(
        base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0
    )


def test_list_models(oai):
    ids = [m.id for m in oai.models.list()]
    assert ids == ["smollm2-135m", "helper"]


def test_chat_completion(oai):
    r = oai.chat.completions.create(
        model="helper",
        messages=[{"role": "user", "content": CAPITAL}],
        temperature=0,
        max_tokens=60,
    )
    assert "paris" in r.choices[0].message.content.lower()
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_completion_streamed(oai):
    stream = oai.chat.completions.create(
        model="helper",
        messages=[{"role": "user", "content": CAPITAL}],
        temperature=0,
        max_tokens=60,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "paris" in text.lower()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_raw_stream_ends_with_done(client):
    body = {
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "max_tokens": 5,
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        frames = [line for line in r.iter_lines() if line]
    assert all(f.startswith("data: ") for f in frames)
    assert frames[-1] == "data: [DONE]"


def test_unknown_model_is_an_openai_not_found(oai):
    with pytest.raises(openai.NotFoundError) as caught:
        oai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["message"].startswith("Model 'nope' not found.")
    assert caught.value.body["type"] == "not_found_error"


def test_bad_request_uses_the_openai_envelope(client):
    r = client.post("/v1/chat/completions", json={"model": "helper", "messages": []})
    assert r.status_code == 422
    assert "messages" in r.json()["error"]["message"]
    r = client.post(
        "/v1/chat/completions",
        json={"model": "helper", "messages": [{"role": "user", "content": "hi"}], "temperature": 9},
    )
    assert r.status_code == 422
    assert "temperature" in r.json()["error"]["message"]
