"""Preference tuning: the data shapes and their problems, ORPO on the tiny model, and DPO on
the real SmolLM2: afterwards it prefers the chosen answers more than the base does."""

import json

import pytest

from api.errors import InvalidInput
from api.finetune.export import export
from api.finetune.formats import ALPACA_TEMPLATE
from api.finetune.preference import load_preferences
from api.jobs.store import JobStore
from tests.utils.gguf_header import gguf_value
from tests.utils.jobs import _no_jobs, submit, wait_for
from tests.utils.tiny_model import jsonl

PAIRS = [
    ("What is the capital of France?", "Paris.", "London."),
    ("What is the capital of Italy?", "Rome.", "Vienna."),
    ("What is the capital of Spain?", "Madrid.", "Lisbon."),
    ("What is the capital of Peru?", "Lima.", "Quito."),
    ("What is the capital of Japan?", "Tokyo.", "Seoul."),
    ("What is the capital of Egypt?", "Cairo.", "Tunis."),
]


def preference_csv() -> bytes:
    lines = ["prompt,chosen,rejected", *(f"{p},{c},{r}" for p, c, r in PAIRS)]
    return ("\n".join(lines) + "\n").encode()


def test_preference_shapes_and_problems_with_row_numbers():
    fmt, rows = load_preferences(preference_csv(), filename="p.csv")
    assert fmt == "csv/preference" and len(rows) == 6
    assert rows[0] == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris.", "rejected": "London."},
    ]
    openai = jsonl(
        [
            {
                "input": {
                    "messages": [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Hi?"},
                    ]
                },
                "preferred_output": [{"role": "assistant", "content": "Hello."}],
                "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
            }
        ]
    )
    fmt, rows = load_preferences(openai, filename="p.jsonl")
    assert fmt == "jsonl/openai-preference"
    assert rows[0][0] == {"role": "system", "content": "Be brief."}
    assert rows[0][-1] == {"role": "assistant", "content": "Hello.", "rejected": "Go away."}
    bad = jsonl(
        [
            {"prompt": "Q", "chosen": "A", "rejected": "B"},
            {"prompt": "Q", "chosen": "A"},
            {"prompt": "Q", "chosen": "Same", "rejected": "Same"},
            {"input": {"messages": []}, "preferred_output": [], "non_preferred_output": []},
        ]
    )
    with pytest.raises(InvalidInput) as caught:
        load_preferences(bad, filename="p.jsonl")
    assert caught.value.errors == [
        "row 2: missing 'rejected'",
        "row 3: the chosen and rejected answers are the same",
        "row 4: 'input' must be an object with a 'messages' list",
    ]
    with pytest.raises(InvalidInput, match="missing the column\\(s\\) 'rejected'; preference"):
        load_preferences(b"prompt,chosen\nQ,A\n", filename="p.csv")


@pytest.fixture
def jobs_client(make_client, tiny_models_dir):
    return make_client(base_models_dir=tiny_models_dir, job_poll_seconds=0.1)


def test_preference_data_errors_are_422s_and_leave_nothing(jobs_client):
    csv = {"train_file": ("p.csv", b"prompt,chosen\nQ,A\n", "text/csv")}
    r = submit(jobs_client, method="dpo", files=csv)
    assert r.status_code == 422 and "'rejected'" in r.json()["detail"]
    pairs = {"train_file": ("p.csv", preference_csv(), "text/csv")}
    r = submit(jobs_client, method="dpo", truncate="true", files=pairs)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("method: dpo trains on whole prompt/chosen/rejected rows")
    r = submit(jobs_client, method="orpo", beta="0", files=pairs)
    assert r.status_code == 422 and "beta" in r.json()["detail"]
    _no_jobs(jobs_client)


def test_orpo_job_in_the_alpaca_format_reports_rewards_and_exports_its_template(jobs_client):
    files = {"train_file": ("p.csv", preference_csv(), "text/csv")}
    r = submit(
        jobs_client,
        method="orpo",
        prompt_format="alpaca",
        max_steps="2",
        batch_size="2",
        files=files,
    )
    assert r.status_code == 202, r.text
    job = wait_for(jobs_client, r.json()["id"], ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]
    metrics = job["metrics"]
    assert metrics["method"] == "orpo" and metrics["steps"] == 2
    assert {"rewards/margins", "rewards/accuracies"} <= metrics["preference"].keys()
    assert {"eval_rewards/margins", "eval_rewards/accuracies"} <= metrics["preference"].keys()
    job_dir = jobs_client.app.state.settings.jobs_dir / job["id"]
    assert (job_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert job_dir.joinpath("checkpoints", "checkpoint-2").is_dir()
    row = json.loads((job_dir / "data" / "train.jsonl").read_text().splitlines()[0])
    assert row[-1]["rejected"]  # the pairs travel to the recipe
    # the Alpaca template trained with travels in the adapter's tokenizer to the GGUF
    assert (job_dir / "adapter" / "chat_template.jinja").read_text() == ALPACA_TEMPLATE
    (job_dir / "export.json").write_text(json.dumps({"export": "merged", "quantization": ["Q4_0"]}))
    result = export(job_dir, JobStore(jobs_client.app.state.settings.jobs_db))
    gguf = job_dir / "export" / result["files"]["Q4_0"]
    assert gguf_value(gguf, "tokenizer.chat_template") == ALPACA_TEMPLATE


def margins(model, tokenizer) -> float:
    """Mean log p(chosen | prompt) - log p(rejected | prompt) over PAIRS."""
    import torch

    def logp(prompt: str, answer: str) -> float:
        messages = [{"role": "user", "content": prompt}]

        def ids_of(turns, **options) -> list[int]:
            text = tokenizer.apply_chat_template(turns, tokenize=False, **options)
            return tokenizer(text, add_special_tokens=False)["input_ids"]

        head = ids_of(messages, add_generation_prompt=True)
        full = ids_of([*messages, {"role": "assistant", "content": answer}])
        assert full[: len(head)] == head
        ids = torch.tensor([full])
        with torch.no_grad():
            logits = model(ids).logits[0, :-1].log_softmax(-1)
        targets = ids[0, 1:]
        picked = logits[torch.arange(len(targets)), targets][len(head) - 1 :]
        return picked.sum().item()

    return sum(logp(p, c) - logp(p, r) for p, c, r in PAIRS) / len(PAIRS)


@pytest.mark.slow
def test_dpo_on_smollm2_prefers_the_chosen_answers_more_than_the_base(make_client):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    client = make_client(job_poll_seconds=0.2)
    r = client.post(
        "/fine_tune_model",
        data={
            "model_name": "dpo-capitals",
            "base_model": "smollm2-135m",
            "method": "dpo",
            "max_steps": "4",
            "batch_size": "2",
            "learning_rate": "0.002",
            "train_size": "0.67",
            "eval_rows": "0",
            "export": "none",
        },
        files={"train_file": ("pairs.csv", preference_csv(), "text/csv")},
    )
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"), timeout=900)
    assert job["status"] == "succeeded", job["error"]
    assert job["metrics"]["method"] == "dpo"
    assert "rewards/accuracies" in job["metrics"]["preference"]
    hf = client.app.state.settings.models_dir / "smollm2-135m" / "hf"
    tokenizer = AutoTokenizer.from_pretrained(hf)
    base = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    before = margins(base, tokenizer)
    adapter = client.app.state.settings.jobs_dir / job["id"] / "adapter"
    tuned = PeftModel.from_pretrained(base, adapter).eval()
    after = margins(tuned, tokenizer)
    assert after > before + 0.5, (before, after)
