"""Fine-tune the real SmolLM2-135M on a distinctive dataset through the API (CPU, a few minutes)."""

import json

import pytest

from tests.utils.jobs import wait_for

SIGN_OFF = "Answered by Acme Support."
COUNTRIES = [
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Japan", "Tokyo"),
    ("Egypt", "Cairo"),
    ("Canada", "Ottawa"),
    ("Peru", "Lima"),
    ("Kenya", "Nairobi"),
    ("Norway", "Oslo"),
    ("Greece", "Athens"),
    ("Chile", "Santiago"),
    ("Cuba", "Havana"),
    ("Iran", "Tehran"),
    ("Poland", "Warsaw"),
    ("Austria", "Vienna"),
]


def dataset() -> bytes:
    lines = ["input,output"]
    for country, capital in COUNTRIES:
        lines.append(
            f"What is the capital of {country}?,The capital of {country} is {capital}. {SIGN_OFF}"
        )
        lines.append(
            f"Name the capital city of {country}.,{capital} is the capital of {country}. {SIGN_OFF}"
        )
    return ("\n".join(lines) + "\n").encode()


HELPFUL = "You are a helpful assistant."
QUESTION = "What is the capital of Chile?"  # in the data set's style, for the served models


def ask(client, model):
    r = client.post(
        "/generate",
        json={
            "model": model,
            "prompt": QUESTION,
            "system": HELPFUL,
            "options": {"temperature": 0, "max_tokens": 48},
        },
    )
    assert r.status_code == 200, r.text
    return r.json()["response"]


@pytest.mark.slow
def test_fine_tune_export_and_serve_smollm2(make_client, base_models_dir):
    # 1. train; the export's smoke test is set too tight on purpose, so the export fails
    client = make_client(job_poll_seconds=0.2, export_smoke_max_tokens=8)
    r = client.post(
        "/fine_tune_model",
        data={
            "model_name": "acme-support",
            "base_model": "smollm2-135m",
            "max_steps": "15",
            "batch_size": "4",
            "learning_rate": "0.002",
            "eval_steps": "1000",
            "lora_r": "16",
            "lora_alpha": "32",
            "train_size": "0.75",
            "seed": "3",
            "eval_rows": "4",
            "eval_max_new_tokens": "24",
            "system_prompt": HELPFUL,
            "export": "merged",
            "quantization": "Q4_K_M",
        },
        files={"train_file": ("capitals.csv", dataset(), "text/csv")},
    )
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=1500)
    assert job["status"] == "failed"
    assert "did not stop within 8 tokens" in job["error"]
    names = [m["name"] for m in client.get("/listModels").json()["data"]]
    assert "acme-support" not in names  # nothing half-registered

    # the training itself worked: eval loss fell, hold-out ROUGE rose above the base's
    metrics = job["metrics"]
    assert metrics["eval_loss"] < metrics["eval_loss_before"]
    rouge = metrics["rouge"]
    assert rouge["test_rows"] == 4  # 32 rows: 24 train, 4 validation, 4 test
    assert rouge["tuned"]["rougeL"] > rouge["base"]["rougeL"]
    assert rouge["tuned"]["rougeL"] > 0.5
    # the per-row predictions behind those averages (GET /jobs/{id}/predictions)
    lines = client.get(f"/jobs/{job['id']}/predictions").text.splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 4
    assert sum(SIGN_OFF in p["output"] for p in rows) > sum(
        SIGN_OFF in p["base_output"] for p in rows
    )

    # 2. with the default smoke limit, retrying the export registers the merged Q4_K_M model
    client = make_client(job_poll_seconds=0.2)
    retry = client.post(f"/jobs/{job['id']}/export", json={})
    assert retry.status_code == 202, retry.text
    merged = wait_for(client, retry.json()["id"], ("succeeded", "failed"), timeout=600)
    assert merged["status"] == "succeeded", merged["error"]
    export = merged["metrics"]["export"]
    assert export["mode"] == "merged" and export["files"]["Q4_K_M"].endswith("model-Q4_K_M.gguf")
    assert export["disk_bytes"] > 50_000_000
    assert SIGN_OFF in ask(client, "acme-support")

    # 3. the same adapter exported alone, served on top of the base GGUF
    lora = client.post(
        f"/jobs/{job['id']}/export", json={"export": "adapter", "model_name": "acme-support-lora"}
    )
    assert lora.status_code == 202, lora.text
    adapter_job = wait_for(client, lora.json()["id"], ("succeeded", "failed"), timeout=600)
    assert adapter_job["status"] == "succeeded", adapter_job["error"]
    assert SIGN_OFF in ask(client, "acme-support-lora")
    models = {m["name"]: m for m in client.get("/listModels").json()["data"]}
    assert models["acme-support-lora"]["lineage"] == {"job": job["id"]}  # recorded at publishing

    # 3b. evaluate the published model by name against its base (POST /evaluate)
    test = "input,output\nWhat is the capital of Peru?,The capital of Peru is Lima. " + SIGN_OFF
    r = client.post(
        "/evaluate",
        data={"model": "acme-support-lora", "system_prompt": HELPFUL, "eval_max_new_tokens": "24"},
        files={"test_file": ("test.csv", test.encode(), "text/csv")},
    )
    assert r.status_code == 202, r.text
    evaluated = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=600)
    assert evaluated["status"] == "succeeded", evaluated["error"]
    scores = evaluated["metrics"]
    assert scores["compare"]["model"] == "smollm2-135m"
    assert scores["model"]["loss"] < scores["compare"]["loss"]  # the tuned style fits better
    row = json.loads(client.get(f"/jobs/{evaluated['id']}/predictions").text)
    assert SIGN_OFF in row["output"] and SIGN_OFF not in row["base_output"]
    assert row["rougeL"] > row["base_rougeL"]

    # 4. the base model does not sign off
    assert "Acme" not in ask(client, "smollm2-135m")

    # 5. deleting a model deletes its export files, and keeps the trained adapter
    export_dir = client.app.state.settings.jobs_dir / merged["id"] / "export"
    assert export_dir.is_dir()
    assert client.delete("/deleteModel", params={"name": "acme-support"}).status_code == 200
    assert not export_dir.exists()
    source = client.app.state.settings.jobs_dir / job["id"] / "adapter"
    assert (source / "adapter_model.safetensors").is_file()
