"""Fine-tune the real SmolLM2-135M on a distinctive dataset through the API (CPU, a few minutes)."""

import pytest

from tests.routes.test_jobs import wait_for

SIGN_OFF = "Answered by Acme Support."
COUNTRIES = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
             ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Peru", "Lima"),
             ("Kenya", "Nairobi"), ("Norway", "Oslo"), ("Greece", "Athens"), ("Chile", "Santiago"),
             ("Cuba", "Havana"), ("Iran", "Tehran"), ("Poland", "Warsaw"), ("Austria", "Vienna")]


def dataset() -> bytes:
    lines = ["input,output"]
    for country, capital in COUNTRIES:
        lines.append(f"What is the capital of {country}?,The capital of {country} is {capital}. "
                     f"{SIGN_OFF}")
        lines.append(f"Name the capital city of {country}.,{capital} is the capital of {country}. "
                     f"{SIGN_OFF}")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.slow
def test_fine_tuning_smollm2_learns_the_sign_off(make_client, base_models_dir):
    client = make_client(job_poll_seconds=0.2)
    r = client.post("/fine_tune_model", data={
        "model_name": "acme-support", "base_model": "smollm2-135m", "max_steps": "15",
        "batch_size": "4", "learning_rate": "0.002", "eval_steps": "1000", "lora_r": "16", "lora_alpha": "32",
        "train_size": "0.75", "seed": "3", "eval_rows": "4", "eval_max_new_tokens": "24",
        "system_prompt": "You are a helpful assistant."},
        files={"train_file": ("capitals.csv", dataset(), "text/csv")})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=1200)
    assert job["status"] == "succeeded", job["error"]
    metrics = job["metrics"]
    assert metrics["eval_loss"] < metrics["eval_loss_before"]
    rouge = metrics["rouge"]
    assert rouge["test_rows"] == 4  # 32 rows: 24 train, 4 validation, 4 test
    assert rouge["tuned"]["rougeL"] > rouge["base"]["rougeL"]
    assert rouge["tuned"]["rougeL"] > 0.5
