"""Predictions, checkpoints, select_best, checkpoint export, several training files,
evaluate jobs and continued training: one tiny-model job (4 real steps on short rows) shared
by the tests of this module. The published-model flow on SmolLM2-135M (lineage recorded at
publishing, POST /evaluate by name) is in test_smollm2_e2e.py, on the job trained there."""

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.finetune.lineage import lineage_of
from api.main import create_app
from api.models.registry import Variant
from tests.utils.jobs import wait_for
from tests.utils.tiny_model import TINY

BASE = TINY
SIGN_OFF = "Acme."
FAST = {
    "base_model": BASE,
    "max_steps": "4",
    "batch_size": "2",
    "learning_rate": "0.01",
    "eval_steps": "2",
    "checkpoint_steps": "2",
    "eval_rows": "2",
    "eval_max_new_tokens": "8",
    "seed": "1",
}


def capitals(pairs: list[tuple[str, str]]) -> bytes:
    rows = ["input,output"] + [f"Capital of {c}?,{k}. {SIGN_OFF}" for c, k in pairs]
    return ("\n".join(rows) + "\n").encode()


FIRST = capitals([("France", "Paris"), ("Spain", "Madrid"), ("Peru", "Lima")])
SECOND = capitals([("Italy", "Rome"), ("Japan", "Tokyo")])
EVAL = capitals([("Cuba", "Havana"), ("Chile", "Santiago")])


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_models_dir):
    data = tmp_path_factory.mktemp("data")
    settings = Settings(
        data_dir=data, base_models_dir=tiny_models_dir, threads=2, job_poll_seconds=0.1
    )
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def tuned(client):
    """A tiny-model job on two train files (the second weighted 2), best checkpoint
    selected, registered as `acme-tuned` as publishing would (the random tiny model never
    stops talking, so its real export fails the smoke test; test_smollm2_e2e.py publishes)."""
    r = client.post(
        "/fine_tune_model",
        data={
            **FAST,
            "model_name": "acme-tuned",
            "select_best": "true",
            "export": "none",
            "train_file_weights": "1,2",
        },
        files=[
            ("train_file", ("first.csv", FIRST, "text/csv")),
            ("train_file", ("second.jsonl", SECOND_JSONL, "application/jsonl")),
            ("eval_file", ("eval.csv", EVAL, "text/csv")),
        ],
    )
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=600)
    assert job["status"] == "succeeded", job["error"]
    register(client, job, "acme-tuned")
    return job


def register(client, job, name):
    store, registry = client.app.state.job_store, client.app.state.registry
    lineage = lineage_of(store.require(job["id"]))
    registry.add(Variant(name=name, base_model=BASE, lineage=lineage))


SECOND_JSONL = "".join(
    json.dumps({"input": f"Capital of {c}?", "output": f"{k}. {SIGN_OFF}"}) + "\n"
    for c, k in [("Italy", "Rome"), ("Japan", "Tokyo")]
).encode()


def test_predictions_per_row_as_jsonl_and_csv(client, tuned):
    r = client.get(f"/jobs/{tuned['id']}/predictions")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert [p["row"] for p in rows] == [1, 2]
    assert {p["input"] for p in rows} == {"Capital of Cuba?", "Capital of Chile?"}
    for p in rows:
        assert p["reference"].endswith(SIGN_OFF)
        assert isinstance(p["output"], str) and isinstance(p["base_output"], str)
        assert 0 <= p["rougeL"] <= 1 and 0 <= p["base_rougeL"] <= 1
    # the averages in the metrics are the means of the per-row scores
    mean = sum(p["rougeL"] for p in rows) / len(rows)
    assert tuned["metrics"]["rouge"]["tuned"]["rougeL"] == pytest.approx(mean, abs=1e-3)

    r = client.get(f"/jobs/{tuned['id']}/predictions", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [t["input"] for t in table] == [p["input"] for p in rows]
    assert table[0]["base_output"] == rows[0]["base_output"]

    bad = client.get(f"/jobs/{tuned['id']}/predictions", params={"format": "xml"})
    assert bad.status_code == 422 and "format" in bad.json()["detail"]
    assert client.get("/jobs/ftjob-nope/predictions").status_code == 404


def test_checkpoints_listed_with_losses_and_the_best_marked(client, tuned):
    r = client.get(f"/jobs/{tuned['id']}/checkpoints")
    assert r.status_code == 200, r.text
    checkpoints = r.json()["data"]
    assert [c["step"] for c in checkpoints] == [2, 4]
    assert all(c["train_loss"] > 0 and c["eval_loss"] > 0 for c in checkpoints)
    best = [c for c in checkpoints if c["best"]]
    assert len(best) == 1 and best[0]["eval_loss"] == min(c["eval_loss"] for c in checkpoints)
    # select_best: the job's final eval loss is the best checkpoint's
    assert tuned["metrics"]["best_checkpoint"].endswith(f"checkpoint-{best[0]['step']}")
    assert tuned["metrics"]["eval_loss"] == pytest.approx(best[0]["eval_loss"], abs=1e-3)


def test_export_a_checkpoint(client, tuned):
    r = client.post(
        f"/jobs/{tuned['id']}/export",
        json={"checkpoint": 2, "export": "adapter", "model_name": "acme-step2"},
    )
    assert r.status_code == 202, r.text
    assert r.json()["progress"] == {"source_job": tuned["id"], "checkpoint": 2}
    done = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=300)
    jobs_dir = client.app.state.settings.jobs_dir
    settings = json.loads((jobs_dir / done["id"] / "export.json").read_text())
    assert settings["adapter_dir"].endswith(f"{tuned['id']}/checkpoints/checkpoint-2")
    # the checkpoint's adapter converted; the random tiny model then fails the smoke test
    assert "Smoke test failed" in done["error"], done["error"]
    assert lineage_of(client.app.state.job_store.require(done["id"])) == {
        "job": tuned["id"],
        "checkpoint": 2,
    }


def test_bad_checkpoint_and_select_best_requests_are_refused(client, tuned):
    r = client.post(f"/jobs/{tuned['id']}/export", json={"checkpoint": 3, "model_name": "x3"})
    assert r.status_code == 422
    assert "checkpoint" in r.json()["detail"] and "steps: 2, 4" in r.json()["detail"]
    r = client.post(f"/jobs/{tuned['id']}/export", json={"checkpoint": 0})
    assert r.status_code == 422
    before = client.get("/jobs").json()["count"]
    r = client.post(
        "/fine_tune_model",
        data={**FAST, "model_name": "never", "select_best": "true", "eval_steps": "3"},
        files={"train_file": ("t.csv", FIRST, "text/csv")},
    )
    assert r.status_code == 422 and "select_best" in r.json()["detail"]
    assert client.get("/jobs").json()["count"] == before


def test_several_train_files_are_mixed_by_weight(tuned):
    assert tuned["progress"]["dataset"]["format"] == "csv/qa+jsonl/qa"
    assert tuned["progress"]["dataset"]["train_rows"] == 3 + 2 * 2
    assert tuned["progress"]["dataset"]["files"] == [
        {"filename": "first.csv", "rows": 3, "weight": 1.0},
        {"filename": "second.jsonl", "rows": 2, "weight": 2.0},
    ]


def _refused(client, data, files, *words):
    before = client.get("/jobs").json()["count"]
    r = client.post("/fine_tune_model", data={**FAST, **data}, files=files)
    assert r.status_code == 422, r.text
    text = r.json()["detail"] + " ".join(r.json().get("errors", []))
    for word in words:
        assert word in text, text
    assert client.get("/jobs").json()["count"] == before  # nothing created
    return r.json()


def test_bad_train_files_and_weights_name_the_file_and_row(client, tuned):
    broken = b"input,output\nCapital of Chad?,Ndjamena.\n,no question\n"
    files = [
        ("train_file", ("good.csv", FIRST, "text/csv")),
        ("train_file", ("broken.csv", broken, "text/csv")),
    ]
    _refused(client, {"model_name": "mixed"}, files, "train_file 2 (broken.csv)", "row 2")
    _refused(
        client,
        {"model_name": "mixed", "train_file_weights": "1"},
        files[:1] + files[:1],
        "2 train_file",
    )
    _refused(client, {"model_name": "mixed", "train_file_weights": "1,0"}, files, "> 0")
    _refused(client, {"model_name": "mixed", "train_file_weights": "a"}, files, "not a number")


def test_evaluate_a_fine_tuned_model_against_its_base(client, tuned):
    r = client.post(
        "/evaluate",
        data={"model": "acme-tuned", "eval_max_new_tokens": "8"},
        files={"test_file": ("test.csv", EVAL, "text/csv")},
    )
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "evaluate" and r.json()["object"] == "evaluation.job"
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=300)
    assert job["status"] == "succeeded", job["error"]
    metrics = job["metrics"]
    assert metrics["test_rows"] == 2
    assert metrics["model"]["model"] == "acme-tuned" and metrics["compare"]["model"] == BASE
    for side in ("model", "compare"):
        assert metrics[side]["perplexity"] == pytest.approx(
            2.718281828 ** metrics[side]["loss"], rel=1e-2
        )
        assert set(metrics[side]["rouge"]) == {"rouge1", "rouge2", "rougeL"}
    rows = [json.loads(x) for x in client.get(f"/jobs/{job['id']}/predictions").text.splitlines()]
    assert len(rows) == 2 and all(p["output"] is not None and p["base_output"] for p in rows)


def test_evaluate_a_checkpoint_without_comparison(client, tuned):
    r = client.post(
        "/evaluate",
        data={"model": f"job:{tuned['id']}@2", "compare_to": "none", "eval_max_new_tokens": "4"},
        files={"test_file": ("test.csv", EVAL, "text/csv")},
    )
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert "compare" not in job["metrics"] and job["metrics"]["model"]["loss"] > 0
    rows = [json.loads(x) for x in client.get(f"/jobs/{job['id']}/predictions").text.splitlines()]
    assert all(p["base_output"] is None for p in rows)


def test_bad_evaluate_requests_are_refused_before_a_job_exists(client, tuned):
    before = client.get("/jobs").json()["count"]
    test = {"test_file": ("test.csv", EVAL, "text/csv")}
    cases = [
        ({"model": "no-such-model"}, test, 404, "model"),
        ({"model": "Bad Name"}, test, 422, "model"),
        ({"model": BASE, "compare_to": "no-such"}, test, 404, "compare_to"),
        ({"model": f"job:{tuned['id']}@3"}, test, 422, "steps: 2, 4"),
        (
            {"model": BASE},
            {"test_file": ("t.csv", b"input,output\n,x\n", "text/csv")},
            422,
            "row 1",
        ),
        ({"model": BASE}, None, 422, "test_file"),
    ]
    for data, files, status, word in cases:
        r = client.post("/evaluate", data=data, files=files)
        assert r.status_code == status, (data, r.text)
        body = r.json()
        assert word in body["detail"] + " ".join(body.get("errors", [])), body
    assert client.get("/jobs").json()["count"] == before


def test_continue_training_the_same_adapter_records_the_lineage(client, tuned):
    r = client.post(
        "/fine_tune_model",
        data={
            **FAST,
            "max_steps": "2",
            "model_name": "acme-more",
            "base_model": "acme-tuned",
            "continue_adapter": "true",
            "export": "none",
        },
        files={
            "train_file": ("second.jsonl", SECOND_JSONL, "application/jsonl"),
            "eval_file": ("eval.csv", EVAL, "text/csv"),
        },
    )
    assert r.status_code == 202, r.text
    assert r.json()["base_model"] == BASE  # the provisioned base under the chain
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=600)
    assert job["status"] == "succeeded", job["error"]
    # training started from the parent's adapter: its eval loss before is the parent's after
    assert job["metrics"]["eval_loss_before"] == pytest.approx(
        tuned["metrics"]["eval_loss"], abs=2e-3
    )
    # and trained it on: the same adapter's parameters, moved by 2 more steps
    assert job["metrics"]["trainable_parameters"] == tuned["metrics"]["trainable_parameters"]
    assert job["metrics"]["eval_loss"] != pytest.approx(job["metrics"]["eval_loss_before"])
    register(client, job, "acme-more")
    models = {m["name"]: m for m in client.get("/listModels").json()["data"]}
    assert models["acme-more"]["lineage"] == {
        "job": job["id"],
        "parent_model": "acme-tuned",
        "parent_job": tuned["id"],
    }
    assert models["acme-tuned"]["lineage"] == {"job": tuned["id"]}
    # the continued adapter is the parent's, trained on: same files, changed weights
    jobs_dir = client.app.state.settings.jobs_dir
    config = json.loads((jobs_dir / job["id"] / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 16


def test_continue_training_on_the_merged_model(client, tuned):
    r = client.post(
        "/fine_tune_model",
        data={
            **FAST,
            "max_steps": "2",
            "model_name": "acme-merged",
            "base_model": "acme-tuned",
            "export": "none",
        },
        files={
            "train_file": ("second.jsonl", SECOND_JSONL, "application/jsonl"),
            "eval_file": ("eval.csv", EVAL, "text/csv"),
        },
    )
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=600)
    assert job["status"] == "succeeded", job["error"]
    # the parent's adapter merged into the base: the new adapter starts from the parent
    assert job["metrics"]["eval_loss_before"] == pytest.approx(
        tuned["metrics"]["eval_loss"], abs=2e-3
    )
    assert job["metrics"]["eval_loss"] != pytest.approx(job["metrics"]["eval_loss_before"])
    run = json.loads((client.app.state.settings.jobs_dir / job["id"] / "run.json").read_text())
    assert run["merge_adapters"] == [
        str(client.app.state.settings.jobs_dir / tuned["id"] / "adapter")
    ]
    # a one-adapter export cannot carry the merged parent
    r = client.post(f"/jobs/{job['id']}/export", json={"export": "adapter", "model_name": "x"})
    assert r.status_code == 422 and "merged" in r.json()["detail"]


def test_bad_continue_requests_are_refused(client, tuned):
    files = {"train_file": ("t.csv", FIRST, "text/csv")}
    _refused(client, {"model_name": "c1", "continue_adapter": "true"}, files, "continue_adapter")
    _refused(
        client,
        {"model_name": "c2", "base_model": "acme-tuned", "export": "adapter"},
        files,
        "continue_adapter: true",
    )
