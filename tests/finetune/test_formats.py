"""prompt_format, system_role, truncate, test_size, group_by_length and mixed_precision: the
templates as text, truncation on SmolLM2's tokenizer, and one tiny job that uses them all."""

import json
import shutil

import pytest

from api.finetune.formats import (
    ALPACA_GO_TEMPLATE,
    ALPACA_TEMPLATE,
    MERGE_PREFIX,
    RAW_TEMPLATE,
    accepts_system,
    environment,
    merge_system,
    served_template,
)
from api.finetune.lengths import chat_template, too_long
from api.finetune.truncate import truncate_rows
from tests.utils.jobs import _no_jobs, events, submit, wait_for
from tests.utils.tiny_model import TINY, qa_csv

SEED_002_ALPACA = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
SEED_002_ALPACA_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides "
    "further context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
NO_SYSTEM = (  # Gemma-style: a template without a system role
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
NO_SYSTEM_BASE = "tiny-nosys"


def render(template: str, messages, **extra) -> str:
    return environment().from_string(template).render(messages=messages, **extra)


def test_alpaca_templates_are_seed_002s_exactly():
    plain = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Red"}]
    assert render(ALPACA_TEMPLATE, plain, eos_token="</s>") == (
        SEED_002_ALPACA.format(instruction="Name a colour.") + "Red</s>"
    )
    with_input = [
        {
            "role": "user",
            "content": "Translate.\n\nHallo",
            "instruction": "Translate.",
            "input": "Hallo",
        },
        {"role": "assistant", "content": "Hello"},
    ]
    assert render(ALPACA_TEMPLATE, with_input, eos_token="</s>") == (
        SEED_002_ALPACA_INPUT.format(instruction="Translate.", input="Hallo") + "Hello</s>"
    )
    # served: the prompt ends where the answer starts; a system prompt replaces the preamble
    asked = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    assert render(ALPACA_TEMPLATE, asked, eos_token="") == (
        "Be brief.\n\n### Instruction:\nHi?\n\n### Response:\n"
    )
    assert render(RAW_TEMPLATE, plain, eos_token="</s>") == "Name a colour.\nRed</s>"


def test_system_role_detection_merge_and_served_templates():
    smollm2 = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}{% endfor %}"
    dropping = "{% for m in messages if m['role'] != 'system' %}{{ m['content'] }}{% endfor %}"
    assert accepts_system(smollm2) and accepts_system(ALPACA_TEMPLATE)
    assert not accepts_system(NO_SYSTEM)  # raises
    assert not accepts_system(dropping)  # renders, but drops the system text
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U"},
        {"role": "assistant", "content": "A"},
    ]
    assert merge_system(messages) == [
        {"role": "user", "content": "S\n\nU"},
        {"role": "assistant", "content": "A"},
    ]
    # the served template folds the system turn the same way before the base's template runs
    served = served_template({"system_role": "merge"}, NO_SYSTEM, "llamacpp")
    assert served == MERGE_PREFIX + NO_SYSTEM
    assert render(served, messages) == render(NO_SYSTEM, merge_system(messages))
    assert served_template({"prompt_format": "chat", "system_role": "native"}, smollm2, "x") is None
    assert served_template({"prompt_format": "alpaca"}, smollm2, "llamacpp") == ALPACA_TEMPLATE
    assert served_template({"prompt_format": "alpaca"}, smollm2, "ollama") == ALPACA_GO_TEMPLATE


def test_truncate_keeps_the_answer_and_cuts_the_question(base_models_dir):
    hf = base_models_dir / "smollm2-135m" / "hf"
    long_question = " ".join(f"word{i}" for i in range(300))
    rows = [
        [{"role": "user", "content": "Short?"}, {"role": "assistant", "content": "Yes."}],
        [
            {"role": "user", "content": long_question},
            {"role": "assistant", "content": "The answer stays whole."},
        ],
        [
            {"role": "user", "content": "Why?"},
            {"role": "assistant", "content": long_question},
        ],
    ]
    cut_rows, count = truncate_rows(rows, hf_dir=hf, max_len=64)
    assert count == 2
    assert cut_rows[0] == rows[0]
    assert cut_rows[1][-1]["content"] == "The answer stays whole."
    assert long_question.startswith(cut_rows[1][0]["content"])  # the question lost its end
    assert len(cut_rows[1][0]["content"]) < len(long_question)
    assert cut_rows[2][0]["content"] == "Why?"  # a short question cannot make room
    assert long_question.startswith(cut_rows[2][-1]["content"])
    assert too_long(cut_rows, hf_dir=hf, max_len=64) == []
    assert len(too_long(rows, hf_dir=hf, max_len=64)) == 2


@pytest.fixture(scope="module")
def formats_models_dir(tiny_models_dir, tmp_path_factory):
    """The tiny base, and a copy of it whose chat template has no system role."""
    models = tmp_path_factory.mktemp("formats-models")
    (models / TINY).symlink_to(tiny_models_dir / TINY)
    shutil.copytree(tiny_models_dir / TINY, models / NO_SYSTEM_BASE)
    (models / NO_SYSTEM_BASE / "hf" / "chat_template.jinja").write_text(NO_SYSTEM)
    return models


@pytest.fixture
def formats_client(make_client, formats_models_dir):
    return make_client(base_models_dir=formats_models_dir, job_poll_seconds=0.1)


def _data_with_long_rows() -> bytes:
    long_question = " ".join(f"detail{i}" for i in range(120))
    extra = [f"{long_question} So what is it?,It is {i}." for i in range(2)]
    return qa_csv(24) + ("\n".join(extra) + "\n").encode()


def test_a_job_with_every_format_option(formats_client):
    client = formats_client
    r = submit(
        client,
        base_model=NO_SYSTEM_BASE,
        system_prompt="You are terse.",
        system_role="auto",
        truncate="true",
        max_len="64",
        test_size="3",
        group_by_length="true",
        mixed_precision="auto",
        files={"train_file": ("train.csv", _data_with_long_rows(), "text/csv")},
    )
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]
    job_dir = client.app.state.settings.jobs_dir / job["id"]
    spec = json.loads((job_dir / "spec.json").read_text())
    assert spec["system_role"] == "merge"  # auto, resolved from the template and recorded
    assert spec["mixed_precision"] == "fp32" and job["metrics"]["mixed_precision"] == "fp32"
    assert spec["test_size"] == 3 and spec["group_by_length"] is True
    summary = job["progress"]["dataset"]
    assert (summary["train_rows"], summary["validation_rows"], summary["test_rows"]) == (21, 2, 3)
    assert summary["train_file_truncated_rows"] == 2
    queued = next(e for e in events(client, job["id"]) if e["data"].get("train_rows"))
    assert queued["data"]["train_file_truncated_rows"] == 2
    rows = [
        json.loads(line)
        for name in ("train", "validation", "test")
        for line in (job_dir / "data" / f"{name}.jsonl").read_text().splitlines()
    ]
    assert all(m[0]["role"] == "user" for m in rows)  # no system turn left
    assert all(m[0]["content"].startswith("You are terse.\n\n") for m in rows)
    cut = [m for m in rows if "detail0" in m[0]["content"]]
    assert len(cut) == 2 and all("So what is it?" not in m[0]["content"] for m in cut)
    assert sorted(m[-1]["content"] for m in cut) == ["It is 0.", "It is 1."]  # answers whole
    hf = client.app.state.settings.models_dir / NO_SYSTEM_BASE / "hf"
    assert too_long(rows, hf_dir=hf, max_len=64, template=chat_template(hf)) == []


def test_native_system_role_on_a_template_without_one_is_a_422(formats_client):
    r = submit(formats_client, base_model=NO_SYSTEM_BASE, system_prompt="Hi", system_role="native")
    assert r.status_code == 422
    assert "System role not supported" in r.json()["detail"]
    assert "use system_role=merge (or auto)" in r.json()["detail"]
    _no_jobs(formats_client)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt_format": "xml"}, "prompt_format: Input should be 'chat', 'alpaca' or 'raw'"),
        ({"system_role": "yes"}, "system_role: Input should be 'auto', 'native' or 'merge'"),
        (
            {"mixed_precision": "fp8"},
            "mixed_precision: Input should be 'auto', 'bf16', 'fp16' or 'fp32'",
        ),
        ({"mixed_precision": "fp16"}, "mixed_precision: fp16 needs a CUDA GPU"),
        ({"optimizer": "adamw_8bit"}, "optimizer: adamw_8bit is a bitsandbytes optimizer"),
        ({"truncate": "maybe"}, "truncate: Input should be a valid boolean"),
        ({"test_size": "0"}, "test_size: Value error, test_size must be a row count"),
        ({"test_size": "23"}, "test_size=23 asks for 23 test rows out of 24"),
        ({"method": "ppo"}, "method: Input should be 'sft', 'dpo' or 'orpo'"),
        ({"liger_kernel": "true"}, "liger_kernel: Liger's kernels are Triton GPU kernels"),
        ({"liger_kernel": "true", "method": "orpo"}, "liger_kernel applies to methods sft and dpo"),
    ],
)
def test_bad_values_are_422s_that_name_the_field(formats_client, fields, message):
    r = submit(formats_client, **fields)
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]
    _no_jobs(formats_client)


def test_test_size_with_an_eval_file_is_a_422(formats_client):
    files = {
        "train_file": ("train.csv", qa_csv(8), "text/csv"),
        "eval_file": ("eval.csv", qa_csv(3), "text/csv"),
    }
    r = submit(formats_client, test_size="2", files=files)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("test_size: the eval_file's rows are the validation")
    _no_jobs(formats_client)
