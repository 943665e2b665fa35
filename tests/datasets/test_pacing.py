"""Self-instruct at scale: prompt files per topic, concurrent requests, requests_per_minute
and back-off on HTTP 429, against a tiny OpenAI-compatible double (fast, no model)."""

import pytest

from tests.routes.test_datasets import SEEDS
from tests.utils.jobs import wait_for
from tests.utils.openai_double import OpenAIDouble
from tests.utils.tiny_model import jsonl

TOPIC_A = b"TOPIC-A: new cooking tasks like these:\n{seed_examples}\nWrite {count} more. {guidance}"
TOPIC_B = b"TOPIC-B: new travel tasks like these:\n{seed_examples}Write {count} more."


def _client(make_client, double):
    return make_client(job_poll_seconds=0.05, teacher_base_url=double.url, teacher_timeout=10)


def _generate(client, prompts=(), **fields):
    files = [("seed_file", ("seeds.jsonl", jsonl(SEEDS), "application/jsonl"))]
    files += [("prompt_file", (name, body, "text/plain")) for name, body in prompts]
    data = {"teacher": "openai:double", "seed": "3", **fields}
    return client.post("/datasets/generate", data=data, files=files)


@pytest.fixture
def double():
    started = []

    def start(**kwargs):
        started.append(OpenAIDouble(**kwargs).start())
        return started[-1]

    yield start
    for d in started:
        d.stop()


def test_prompt_files_rotate_per_round_and_429_is_retried_after_retry_after(make_client, double):
    teacher = double(refuse=2, retry_after="0.3")
    client = _client(make_client, teacher)
    r = _generate(
        client,
        prompts=[("cooking.txt", TOPIC_A), ("travel.txt", TOPIC_B)],
        count="16",
        guidance="Keep it short.",
        requests_per_minute="600",
    )
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=60)
    assert job["status"] == "succeeded", job["error"]
    topics = [p.split(":")[0] for _, s, p in teacher.log if s == 200 and p.startswith("TOPIC")]
    assert topics[:4] == ["TOPIC-A", "TOPIC-B", "TOPIC-A", "TOPIC-B"]
    first = next(p for _, s, p in teacher.log if p.startswith("TOPIC-A"))
    assert "\n1. " in first and "\n3. " in first and "Write 5 more. Keep it short." in first
    # two 429s, each retried no sooner than its Retry-After (0.3 s)
    statuses = [s for _, s, _ in teacher.log]
    assert statuses[:3] == [429, 429, 200]
    times = teacher.arrivals()
    assert times[1] - times[0] >= 0.29 and times[2] - times[1] >= 0.29
    # 600 a minute: one request every 0.1 s at most (burst 1)
    # (cumulative: one arrival may be delayed and the next then look close to it, but the
    # k-th request after the first can never arrive before k intervals have passed)
    paced = times[2:]
    assert len(paced) > 3
    late = [paced[k] - paced[0] - 0.1 * k for k in range(1, len(paced))]
    assert min(late) >= -0.05, late
    dataset = client.get(f"/datasets/{job['id']}").json()
    speed = dataset["throughput"]
    assert dataset["rows"] == 16
    assert speed["rate_limited"] == 2 and speed["requests"] == len(teacher.arrivals(200))
    assert speed["pairs_per_minute"] > 0 and speed["wall_seconds"] > 0.6
    assert "2 answered 429" in dataset["report"]


def test_concurrency_keeps_that_many_requests_in_flight(make_client, double):
    teacher = double(delay=0.3)
    client = _client(make_client, teacher)
    r = _generate(client, count="6", concurrency="3")
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=60)
    assert job["status"] == "succeeded", job["error"]
    assert teacher.max_in_flight == 3
    assert client.get(f"/datasets/{job['id']}").json()["throughput"]["concurrency"] == 3


def test_too_many_429s_fail_the_job_with_the_status(make_client, double):
    teacher = double(refuse=10, retry_after="0")
    client = _client(make_client, teacher)
    r = _generate(client, count="2", rate_limit_retries="2")
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=60)
    assert job["status"] == "failed" and "answered HTTP 429" in job["error"]
    assert len(teacher.log) == 3  # the first try and two retries


def test_bad_prompt_files_and_pacing_options_are_refused(make_client, double):
    client = _client(make_client, double())

    def refused(response, text):
        assert response.status_code == 422, response.text
        assert text in response.json()["detail"], response.json()["detail"]

    refused(
        _generate(client, prompts=[("bad.txt", b"{seed_examples} {topic}")]),
        "unknown placeholder {topic}",
    )
    refused(_generate(client, prompts=[("no.txt", b"Write tasks.")]), "needs {seed_examples}")
    refused(_generate(client, prompts=[("brace.txt", b"{seed_examples} {")]), "literal brace")
    refused(_generate(client, teacher="smollm2-135m", concurrency="2"), "openai:")
    too_many = _generate(client, concurrency="17")
    assert too_many.status_code == 422 and "concurrency" in too_many.text
    assert client.get("/datasets").json()["count"] == 0
