"""`llmp` as a user runs it: a subprocess against the API as a real uvicorn process (with a key),
the tiny base for training and SmolLM2 for answers."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib

import httpx
import pytest

from api.config import REPO_ROOT
from tests.routes.test_datasets import SEEDS
from tests.utils.api_process import ApiProcess
from tests.utils.pdfs import HANDBOOK, pdf_bytes
from tests.utils.tiny_model import TINY, jsonl, qa_csv

KEY = "cli-test-key-0123456789"
TINY_TRAIN = ["--base", TINY, "--steps", "2", "--batch_size", "4", "--learning-rate", "0.01"]
QUIET = ["--set", "eval_rows=1", "--set", "eval_max_new_tokens=4", "--set", "checkpoint_steps=2"]


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny_models_dir):
    data = tmp_path_factory.mktemp("cli") / "data"
    # an OpenAI-compatible teacher that is not there: a dataset job fails in seconds (a real
    # generation and download are tests/routes/test_datasets.py's, minutes on 2 cores)
    process = ApiProcess(
        data,
        tiny_models_dir,
        LLM_API_KEY=KEY,
        LLM_TEACHER_BASE_URL="http://127.0.0.1:9/v1",
        LLM_TEACHER_TIMEOUT="2",
        HF_TOKEN="",  # `llmp push` is refused at submit: the server has no token
    ).start()
    yield process
    process.stop()


def llmp(api, *args, key=KEY, stdin=None, timeout=600, **kwargs):
    env = {**os.environ, "LLM_URL": api.url, "LLM_API_KEY": key, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "api.cli.main", *args],
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_console_script_is_llmp():
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"llmp": "api.cli.main:main"}
    from api.cli.main import main

    assert callable(main)


def test_models_create_list_delete_and_errors_as_exit_codes(api):
    assert "Created pirate" in ok(
        llmp(
            api,
            "models",
            "create",
            "pirate",
            "--base",
            "smollm2-135m",
            "--system",
            "Arr.",
            "-p",
            "temperature=0.2",
        )
    )
    listed = json.loads(ok(llmp(api, "models", "list", "--json")))
    assert {"pirate", TINY, "smollm2-135m"} <= {m["name"] for m in listed["data"]}
    assert "pirate" in ok(llmp(api, "models", "list"))
    again = llmp(api, "models", "create", "pirate")
    assert again.returncode == 1
    assert "Error 409: A model named 'pirate' already exists" in again.stderr
    wrong_key = llmp(api, "models", "list", key="wrong-key-0123456789")
    assert wrong_key.returncode == 1 and "Error 401" in wrong_key.stderr
    bad = llmp(api, "models", "create", "Bad Name")
    assert bad.returncode == 1 and "Error 422: Invalid request: name" in bad.stderr
    assert "1-63 characters" in bad.stderr
    assert "deleted" in ok(llmp(api, "models", "delete", "pirate"))
    gone = llmp(api, "models", "delete", "pirate")
    assert gone.returncode == 1 and "not found" in gone.stderr
    down = llmp(api, "--url", "http://127.0.0.1:9", "models", "list")
    assert down.returncode == 3 and "Cannot reach the service" in down.stderr
    assert llmp(api, "models", "nope").returncode == 2


def test_generate_streams_and_chat_answers_one_shot(api):
    text = ok(
        llmp(
            api,
            "generate",
            "smollm2-135m",
            "What is the capital of France?",
            "-o",
            "max_tokens=8",
            "-o",
            "temperature=0",
        )
    )
    assert text.strip()
    whole = ok(
        llmp(
            api,
            "generate",
            "smollm2-135m",
            "What is the capital of France?",
            "-o",
            "max_tokens=8",
            "-o",
            "temperature=0",
            "--no-stream",
        )
    )
    assert whole == text  # the same answer, streamed or not
    chat = ok(
        llmp(
            api,
            "chat",
            "smollm2-135m",
            "-m",
            "Hi",
            "-m",
            "And again?",
            "-o",
            "max_tokens=6",
            "-o",
            "temperature=0",
        )
    )
    assert len([line for line in chat.splitlines() if line.strip()]) >= 2
    interactive = ok(llmp(api, "chat", "smollm2-135m", "-o", "max_tokens=4", stdin="Hello\n\n"))
    assert ">>>" in interactive
    missing = llmp(api, "generate", "nope", "Hi")
    assert missing.returncode == 1 and "Model 'nope' not found" in missing.stderr


def test_docs_import_list_delete(api, tmp_path):
    pdf = tmp_path / "handbook.pdf"
    pdf.write_bytes(pdf_bytes(HANDBOOK))
    assert "Imported handbook.pdf" in ok(
        llmp(api, "docs", "import", str(pdf), "-m", "smollm2-135m")
    )
    listed = json.loads(ok(llmp(api, "docs", "list", "-m", "smollm2-135m", "--json")))
    assert [d["name"] for d in listed["data"]] == ["handbook.pdf"]
    answer = ok(
        llmp(
            api,
            "generate",
            "smollm2-135m",
            "How many vacation days?",
            "--all-docs",
            "-o",
            "max_tokens=8",
        )
    )
    assert "source: handbook.pdf" in answer
    assert "deleted" in ok(llmp(api, "docs", "delete", "handbook.pdf", "-m", "smollm2-135m"))
    assert llmp(api, "docs", "delete", "-m", "smollm2-135m").returncode == 2
    notpdf = tmp_path / "x.pdf"
    notpdf.write_text("hello")
    refused = llmp(api, "docs", "import", str(notpdf), "-m", "smollm2-135m")
    assert refused.returncode == 1 and "PDF" in refused.stderr


def test_finetune_with_seed_flags_follows_then_downloads_the_result(api, tmp_path):
    train = tmp_path / "train.csv"
    train.write_bytes(qa_csv(16))
    out_dir = tmp_path / "tuned-cli"
    run = llmp(
        api,
        "finetune",
        "--dataset-path",
        str(train),
        *TINY_TRAIN,
        "--r",
        "4",
        "--lora-alpha",
        "8",
        "--lora-dropout",
        "0.0",
        "--train-size",
        "0.75",
        "--seed",
        "3",
        "--max-len",
        "64",
        "--has-system-prompt",
        "0",
        "--export",
        "none",
        *QUIET,
        "--output-path",
        str(out_dir),
    )
    ok(run)
    job_id = run.stdout.splitlines()[0]
    assert "progress: step 2/2, loss" in run.stderr and "succeeded: Finished." in run.stderr
    assert "step 2/2" in run.stderr  # the bar's last state
    spec = json.loads(ok(llmp(api, "jobs", "show", job_id)))["hyperparameters"]
    assert (spec["model_name"], spec["base_model"], spec["max_steps"], spec["lora_r"]) == (
        "tuned-cli",
        TINY,
        2,
        4,
    )
    assert spec["system_role"] == "merge"  # --has-system-prompt 0
    assert (spec["lora_alpha"], spec["lora_dropout"], spec["train_size"], spec["seed"]) == (
        8,
        0.0,
        0.75,
        3,
    )
    assert (spec["max_len"], spec["batch_size"], spec["learning_rate"]) == (64, 4, 0.01)
    # the downloaded files are the listed ones, byte for byte
    listed = httpx.get(
        f"{api.url}/models/tuned-cli/files", headers={"Authorization": f"Bearer {KEY}"}
    ).json()["data"]
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"} <= {
        f["path"] for f in listed
    }
    for entry in listed:
        data = (out_dir / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert job_id in ok(llmp(api, "jobs", "list"))
    follow = ok(llmp(api, "jobs", "follow", job_id))
    assert f"Job {job_id} succeeded" in follow
    # download: one file, resumed from a partial copy with a Range request
    target = tmp_path / "dl" / "tuned-cli" / "adapter" / "adapter_model.safetensors"
    target.parent.mkdir(parents=True)
    whole = (out_dir / "adapter" / "adapter_model.safetensors").read_bytes()
    (target.parent / "adapter_model.safetensors.part").write_bytes(whole[:1000])
    ok(
        llmp(
            api,
            "download",
            "tuned-cli",
            "-f",
            "adapter/adapter_model.safetensors",
            "-o",
            str(tmp_path / "dl"),
        )
    )
    assert target.read_bytes() == whole
    assert (
        'GET /models/tuned-cli/files/adapter/adapter_model.safetensors HTTP/1.1" 206' in api.tail()
    )
    nofile = llmp(api, "download", "tuned-cli", "-f", "nope.gguf")
    assert nofile.returncode == 1 and "adapter/adapter_model.safetensors" in nofile.stderr
    # export again, followed: the tiny random model never stops talking, so the export's
    # smoke test fails it, and `llmp` leaves with 4 and the reason
    again = llmp(api, "jobs", "export", job_id, "--model-name", "tuned-cli2", "--mode", "adapter")
    assert again.returncode == 4, again.stderr
    assert "failed: Export failed: Smoke test failed" in again.stderr


def test_finetune_refuses_flags_the_api_lacks_and_missing_data(api, tmp_path):
    train = tmp_path / "train.csv"
    train.write_bytes(qa_csv(8))
    refused = llmp(
        api, "finetune", "--dataset-path", str(train), "-n", "x", "--has-system-prompt", "2"
    )
    assert refused.returncode == 2 and "--has-system-prompt" in refused.stderr  # 0 or 1
    assert llmp(api, "finetune", "-n", "x").returncode == 2
    bad = llmp(api, "finetune", "--dataset-path", str(train), "-n", "x", "--bits", "3")
    assert bad.returncode == 1 and "bits must be 4" in bad.stderr
    noname = llmp(api, "finetune", "--dataset-path", str(train), "--output-path", "/tmp/Not Ok")
    assert noname.returncode == 2 and "--model-name" in noname.stderr


def test_ctrl_c_asks_and_cancels_and_jobs_cancel(api, tmp_path):
    train = tmp_path / "train.csv"
    train.write_bytes(qa_csv(16))
    started = llmp(
        api,
        "finetune",
        "--train-file",
        str(train),
        "-n",
        "long-one",
        "--base",
        TINY,
        "--steps",
        "400",
        "--export",
        "none",
        "--no-follow",
    )
    job_id = ok(started).strip()
    env = {**os.environ, "LLM_URL": api.url, "LLM_API_KEY": KEY}
    follower = subprocess.Popen(
        [sys.executable, "-m", "api.cli.main", "jobs", "follow", job_id],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal: a suite started in the background (`make test &`) runs with
        # SIGINT ignored, which children inherit and Python then keeps ignoring
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        progress = httpx.get(
            f"{api.url}/jobs/{job_id}", headers={"Authorization": f"Bearer {KEY}"}
        ).json()["progress"]
        if progress.get("step"):
            break
        time.sleep(0.3)
    # the follower is running (its Ctrl-C handler set) once it has printed an event: a
    # SIGINT during its start-up would end it before it could ask
    first = follower.stderr.readline()
    follower.send_signal(signal.SIGINT)
    out, err = follower.communicate("y\n", timeout=60)
    err = first + err
    assert follower.returncode == 130, err
    assert f"Cancel job {job_id}?" in err and f"Job {job_id} cancelled." in err
    shown = json.loads(ok(llmp(api, "jobs", "show", job_id)))
    assert shown["status"] == "cancelled"
    followed = llmp(api, "jobs", "follow", job_id)
    assert followed.returncode == 5
    # `jobs cancel` on another
    other = ok(
        llmp(
            api,
            "finetune",
            "--train-file",
            str(train),
            "-n",
            "long-two",
            "--base",
            TINY,
            "--steps",
            "400",
            "--export",
            "none",
            "--no-follow",
        )
    ).strip()
    assert "cancelled" in ok(llmp(api, "jobs", "cancel", other))


def test_datasets_generate_follows_the_job_and_download_says_why_not(api, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_bytes(jsonl(SEEDS))
    topic = tmp_path / "cooking.txt"
    topic.write_text("Cooking tasks like:\n{seed_examples}\nWrite {count} more.")
    run = llmp(
        api,
        "datasets",
        "generate",
        "--teacher",
        "openai:some-model",
        "--seed-file",
        str(seeds),
        "--count",
        "2",
        "--set",
        "max_new_tokens=48",
        "--prompt-file",
        str(topic),
        "--concurrency",
        "2",
        "--requests-per-minute",
        "600",
    )
    assert run.returncode == 4, run.stderr
    dataset_id = run.stdout.splitlines()[0]
    assert dataset_id.startswith("dsjob-")
    assert f"Job {dataset_id} failed" in run.stderr
    assert "http://127.0.0.1:9/v1 is not reachable" in run.stderr
    shown = json.loads(ok(llmp(api, "jobs", "show", dataset_id)))
    assert shown["kind"] == "dataset" and shown["status"] == "failed"
    assert shown["hyperparameters"]["concurrency"] == 2
    assert shown["hyperparameters"]["requests_per_minute"] == 600
    topic.write_text("{seed_examples} about {topic}")
    wrong = llmp(
        api,
        "datasets",
        "generate",
        "--teacher",
        "openai:m",
        "--seed-file",
        str(seeds),
        "--prompt-file",
        str(topic),
    )
    assert wrong.returncode == 1 and "unknown placeholder {topic}" in wrong.stderr
    refused = llmp(api, "datasets", "download", dataset_id, "-o", str(tmp_path / "x.jsonl"))
    assert refused.returncode == 1 and "Error 409" in refused.stderr
    assert not (tmp_path / "x.jsonl").exists()
    unknown = llmp(api, "datasets", "download", "dsjob-nope")
    assert unknown.returncode == 1 and "Error 404" in unknown.stderr
    bad = llmp(api, "datasets", "generate", "--teacher", "smollm2-135m", "--set", "count")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_push_without_a_server_token_says_to_set_hf_token(api):
    result = llmp(api, "push", TINY, "me/tiny", "--public", "--file", "hf/config.json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Error 409" in result.stderr and "set HF_TOKEN" in result.stderr
    bad = llmp(api, "push", TINY, "not a repo")
    assert bad.returncode == 1 and "repo_id" in bad.stderr
