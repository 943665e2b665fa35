"""Dataset generation through the HTTP API, with the real SmolLM2 as the teacher."""

import csv
import io
import json
import time

import pytest

from api.datasets.filters import Novelty
from tests.utils.jobs import FAST, events, wait_for
from tests.utils.pdfs import HANDBOOK, pdf_bytes
from tests.utils.service_process import service  # noqa: F401  (fixture)
from tests.utils.tiny_model import jsonl

SEEDS = [
    {
        "instruction": "Give three tips for staying healthy.",
        "input": "",
        "output": "Eat well, sleep enough and exercise.",
    },
    {"instruction": "What is the capital of France?", "input": "", "output": "Paris."},
    {
        "instruction": "Explain what photosynthesis is in one sentence.",
        "input": "",
        "output": "Plants turn light, water and carbon dioxide into sugar and oxygen.",
    },
    {
        "instruction": "Translate 'good morning' into Spanish.",
        "input": "",
        "output": "Buenos días.",
    },
    {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
]
QUICK = {"teacher": "smollm2-135m", "max_new_tokens": "96", "seed": "7"}


@pytest.fixture
def ds_client(make_client, tiny_models_dir):
    # the tiny base trains in seconds; SmolLM2 (linked in the same dir) is the teacher
    return make_client(base_models_dir=tiny_models_dir, job_poll_seconds=0.1)


def generate(client, seeds=SEEDS, **fields):
    files = {"seed_file": ("seeds.jsonl", jsonl(seeds), "application/jsonl")} if seeds else None
    return client.post("/datasets/generate", data={**QUICK, **fields}, files=files)


def test_five_seeds_become_a_dataset_that_trains_a_model_by_id(ds_client):
    r = generate(ds_client, count="3")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "dataset" and job["object"] == "dataset.job"
    done = wait_for(ds_client, job["id"], ("succeeded", "failed"), timeout=900)
    assert done["status"] == "succeeded", done["error"]

    dataset = ds_client.get(f"/datasets/{job['id']}").json()
    assert dataset["rows"] == 3 and dataset["requested"] == 3 and dataset["complete"]
    assert dataset["source"] == "seeds" and dataset["teacher"] == "smollm2-135m"
    assert dataset["report"].startswith("All 3 requested pairs")
    assert len(dataset["samples"]) == 3
    # new instructions: none too close to a seed or to each other
    novelty = Novelty(0.7, [s["instruction"] for s in SEEDS])
    for row in dataset["samples"]:
        assert row["output"].strip()
        assert novelty.is_novel(row["instruction"]), row["instruction"]
        novelty.add(row["instruction"])
    assert [d["id"] for d in ds_client.get("/datasets").json()["data"]] == [job["id"]]
    types = [e["type"] for e in events(ds_client, job["id"])]
    assert types[:3] == ["validating_files", "queued", "running"]
    assert types.count("progress") == 3 and types[-1] == "succeeded"

    lines = ds_client.get(f"/datasets/{job['id']}/download").text.splitlines()
    assert [json.loads(line) for line in lines] == dataset["samples"]
    r = ds_client.get(f"/datasets/{job['id']}/download", params={"format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["instruction"] for row in rows] == [s["instruction"] for s in dataset["samples"]]

    # the dataset feeds a fine-tuning job by id, in place of an uploaded file
    r = ds_client.post(
        "/fine_tune_model", data={"model_name": "from-dataset", **FAST, "dataset_id": job["id"]}
    )
    assert r.status_code == 202, r.text
    tuned = wait_for(ds_client, r.json()["id"], ("succeeded", "failed"))
    assert tuned["status"] == "succeeded", tuned["error"]
    assert tuned["progress"]["dataset"]["format"] == "jsonl/alpaca"
    assert (
        sum(tuned["progress"]["dataset"][k] for k in ("train_rows", "validation_rows", "test_rows"))
        == 3
    )

    r = ds_client.delete(f"/datasets/{job['id']}")
    assert r.status_code == 200
    assert ds_client.get(f"/datasets/{job['id']}").status_code == 404
    assert not (ds_client.app.state.settings.jobs_dir / job["id"]).exists()


def test_too_strict_filters_end_with_a_report_of_why(ds_client):
    # no answer fits in one character: every candidate is dropped, and the job says why
    job = generate(ds_client, count="5", max_rounds="1", max_output_chars="1").json()
    done = wait_for(ds_client, job["id"], ("succeeded", "failed"), timeout=600)
    assert done["status"] == "failed"
    assert (
        "Only 0 of 5 requested pairs survived the filters after 1 teacher rounds" in done["error"]
    )
    assert "answer too long or cut off" in done["error"]
    dataset = ds_client.get(f"/datasets/{job['id']}").json()
    assert dataset["rows"] == 0 and dataset["dropped"]["overlong_output"] >= 1
    r = ds_client.get(f"/datasets/{job['id']}/download")
    assert r.status_code == 409 and "failed" in r.json()["detail"]


def test_documents_yield_pairs_that_cite_their_page(ds_client):
    r = ds_client.post("/createModel", json={"name": "hr", "base_model": "smollm2-135m"})
    assert r.status_code in (200, 201), r.text
    r = ds_client.post(
        "/importDocument",
        data={"model": "hr"},
        files={"file": ("handbook.pdf", pdf_bytes(HANDBOOK), "application/pdf")},
    )
    assert r.status_code in (200, 201), r.text
    job = ds_client.post(
        "/datasets/generate", data={**QUICK, "model": "hr", "count": "2", "min_support": "0.3"}
    ).json()
    done = wait_for(ds_client, job["id"], ("succeeded", "failed"), timeout=900)
    assert done["status"] == "succeeded", done["error"]
    rows = [
        json.loads(line)
        for line in ds_client.get(f"/datasets/{job['id']}/download").text.splitlines()
    ]
    assert len(rows) == 2
    for row in rows:
        source = row["source"]
        assert source["document"] == "handbook.pdf" and 1 <= source["page"] <= len(HANDBOOK)
        assert row["instruction"].strip() and row["output"].strip()
    dataset = ds_client.get(f"/datasets/{job['id']}").json()
    assert dataset["source"] == "documents" and dataset["model"] == "hr"


def test_bad_requests_are_refused_before_any_job(ds_client):
    def refused(response, status, text):
        assert response.status_code == status, response.text
        assert text in response.json()["detail"], response.json()["detail"]

    refused(
        ds_client.post(
            "/datasets/generate",
            data=QUICK,
            files={"seed_file": ("seeds.jsonl", b"", "application/jsonl")},
        ),
        422,
        "seed_file is empty",
    )
    refused(generate(ds_client, teacher="no-such-model"), 404, "Unknown teacher")
    refused(generate(ds_client, teacher="openai:gpt-4o-mini"), 422, "LLM_TEACHER_BASE_URL")
    refused(generate(ds_client, count="1001"), 422, "LLM_MAX_DATASET_TARGET")
    refused(generate(ds_client, seeds=None), 422, "Give either a `seed_file`")
    refused(generate(ds_client, model="hr"), 422, "not both")
    refused(generate(ds_client, seeds=None, model="nobody"), 404, "not found")
    refused(
        ds_client.post("/fine_tune_model", data={"model_name": "x", **FAST}),
        422,
        "No training data",
    )
    refused(
        ds_client.post(
            "/fine_tune_model", data={"model_name": "x", **FAST, "dataset_id": "dsjob-nope"}
        ),
        404,
        "Dataset 'dsjob-nope' not found",
    )
    assert ds_client.get("/jobs").json()["count"] == 0
    assert not any(ds_client.app.state.settings.jobs_dir.glob("*"))


def test_unreachable_teacher_endpoint_fails_the_job_cleanly(make_client, tiny_models_dir):
    client = make_client(
        base_models_dir=tiny_models_dir,
        job_poll_seconds=0.1,
        teacher_base_url="http://127.0.0.1:9/v1",
        teacher_timeout=2,
        teacher_api_key="secret-teacher-key",
    )
    job = generate(client, count="2", teacher="openai:some-model").json()
    done = wait_for(client, job["id"], ("succeeded", "failed"), timeout=120)
    assert done["status"] == "failed"
    assert "http://127.0.0.1:9/v1 is not reachable" in done["error"]
    assert "secret-teacher-key" not in json.dumps(done)
    assert client.get(f"/datasets/{job['id']}").json()["rows"] == 0


def test_openai_compatible_endpoint_as_teacher(service, make_client, tiny_models_dir):
    """Our own service, started as a real process, is the OpenAI-compatible teacher."""
    client = make_client(
        base_models_dir=tiny_models_dir,
        job_poll_seconds=0.1,
        teacher_base_url=f"{service}/v1",
        teacher_api_key="process-test-key-123456",
    )
    # a prompt file for the topic, two requests at once, paced: the service answers them
    topic = b"Here are example tasks:\n{seed_examples}\nWrite {count} new, different tasks."
    job = client.post(
        "/datasets/generate",
        data={
            **QUICK,
            "count": "1",
            "teacher": "openai:smollm2-135m",
            "concurrency": "2",
            "requests_per_minute": "120",
        },
        files=[
            ("seed_file", ("seeds.jsonl", jsonl(SEEDS), "application/jsonl")),
            ("prompt_file", ("topic.txt", topic, "text/plain")),
        ],
    ).json()
    done = wait_for(client, job["id"], ("succeeded", "failed"), timeout=600)
    assert done["status"] == "succeeded", done["error"]
    dataset = client.get(f"/datasets/{job['id']}").json()
    assert dataset["rows"] == 1
    assert dataset["throughput"]["concurrency"] == 2
    assert dataset["throughput"]["requests"] >= 3  # two rounds at once, then an answer
    assert dataset["throughput"]["rate_limited"] == 0

    wrong_key = make_client(
        base_models_dir=tiny_models_dir,
        job_poll_seconds=0.1,
        data_dir=client.app.state.settings.data_dir.parent / "other",
        teacher_base_url=f"{service}/v1",
        teacher_api_key="not-the-right-key-000000",
    )
    job = generate(wrong_key, count="1", teacher="openai:smollm2-135m").json()
    done = wait_for(wrong_key, job["id"], ("succeeded", "failed"), timeout=120)
    assert done["status"] == "failed" and "answered HTTP 401" in done["error"]
    assert "not-the-right-key" not in json.dumps(done)


def test_cancel_stops_generation_between_teacher_calls(ds_client):
    job = generate(ds_client, count="50").json()
    wait_for(ds_client, job["id"], ("running",))
    r = ds_client.post(f"/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # the runner lets go of the job after the teacher call in flight, and takes the next one
    follow = ds_client.post(
        "/fine_tune_model",
        data={"model_name": "after-cancel", **FAST},
        files={"train_file": ("train.jsonl", jsonl(SEEDS * 2), "application/jsonl")},
    )
    assert follow.status_code == 202, follow.text
    done = wait_for(ds_client, follow.json()["id"], ("succeeded", "failed"), timeout=600)
    assert done["status"] == "succeeded", done["error"]
    dataset = ds_client.get(f"/datasets/{job['id']}").json()
    assert dataset["status"] == "cancelled" and dataset["rows"] < 50
    assert ds_client.get(f"/datasets/{job['id']}/download").status_code == 409
    assert ds_client.delete(f"/datasets/{job['id']}").status_code == 200


def test_restart_resumes_generation_with_the_pairs_it_kept(make_client, tiny_models_dir):
    first = make_client(base_models_dir=tiny_models_dir, job_poll_seconds=0.1)
    job = generate(first, count="2").json()
    deadline = time.monotonic() + 600
    while first.get(f"/datasets/{job['id']}").json()["rows"] < 1:
        assert time.monotonic() < deadline, "no pair was kept"
        time.sleep(0.2)
    kept = first.get(f"/datasets/{job['id']}").json()["samples"][0]
    first.__exit__(None, None, None)  # the API stops with the job half done
    second = make_client(base_models_dir=tiny_models_dir, job_poll_seconds=0.1)
    done = wait_for(second, job["id"], ("succeeded", "failed"), timeout=600)
    assert done["status"] == "succeeded", done["error"]
    dataset = second.get(f"/datasets/{job['id']}").json()
    assert dataset["rows"] == 2 and dataset["samples"][0] == kept
    messages = [e["message"] for e in events(second, job["id"])]
    assert any("The API restarted during the job" in m for m in messages), messages
