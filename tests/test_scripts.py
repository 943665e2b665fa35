"""The operator's scripts: curl examples against the real service, and the cache cleaners.

The curl examples run with bash against the embedded service started as `make run` starts
it (uvicorn in its own process on a loopback port, SmolLM2 through llama.cpp).
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from api.config import REPO_ROOT, Settings
from api.main import create_app
from tests.utils.pdfs import write_pdf
from tests.utils.service_process import service  # noqa: F401 - the running service fixture

CURL_DIR = REPO_ROOT / "scripts" / "curl"
EXAMPLES = sorted(p for p in CURL_DIR.glob("*.sh") if not p.name.startswith("_"))
KEY = "process-test-key-123456"  # the key the `service` fixture starts with
# `api METHOD /path` or `api METHOD "/jobs/${job_id}/events"`: ${var} stands for {var}
CALL_RE = re.compile(r"^\s*api\s+(GET|POST|PUT|PATCH|DELETE)\s+\"?(/[^\s\"'?]*)", re.M)


def run(
    script: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str = "",
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def api_path(path: str) -> str:
    """The OpenAPI path a script's path stands for: ${job_id} -> {job_id}."""
    return re.sub(r"\$\{(\w+)\}", r"{\1}", path)


# -- every example targets an endpoint that exists -------------------------------------------


def test_there_is_an_example_for_each_model_document_generation_and_job_endpoint():
    assert [p.name for p in EXAMPLES] == [
        "cancel_job.sh",
        "chat_completions.sh",
        "create_model.sh",
        "delete_document.sh",
        "delete_model.sh",
        "fine_tune.sh",
        "follow_job.sh",
        "generate.sh",
        "generate_with_documents.sh",
        "import_document.sh",
        "list_documents.sh",
        "list_models.sh",
    ]


def test_script_paths_with_variables_are_read_as_path_templates():
    calls = CALL_RE.findall('  api GET "/jobs/${job_id}/events" -H x\napi GET /listModels\n')
    assert [(m, api_path(p)) for m, p in calls] == [
        ("GET", "/jobs/{job_id}/events"),
        ("GET", "/listModels"),
    ]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_each_example_calls_an_operation_in_the_openapi_schema(script, tmp_path):
    paths = create_app(Settings(data_dir=tmp_path)).openapi()["paths"]
    text = script.read_text()
    calls = CALL_RE.findall(text)
    assert calls, f"{script.name} makes no `api METHOD /path` call"
    for method, path in ((m, api_path(p)) for m, p in calls):
        assert path in paths, f"{script.name}: {path} is not an endpoint"
        assert method.lower() in paths[path], f"{script.name}: {method} {path} does not exist"
    assert "set -euo pipefail" in text
    assert 'source "$(dirname "$0")/_common.sh"' in text
    assert os.access(script, os.X_OK)


def test_the_shared_helper_fails_on_http_errors_and_sends_the_key():
    common = (CURL_DIR / "_common.sh").read_text()
    assert "--fail-with-body" in common
    assert 'BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"' in common
    assert '"Authorization: Bearer ${LLM_API_KEY}"' in common


# -- the examples against the running service ------------------------------------------------


def test_examples_against_the_running_service(service):  # noqa: F811
    env = {"BASE_URL": service, "LLM_API_KEY": KEY, "MAX_TOKENS": "8"}

    listed = run(CURL_DIR / "list_models.sh", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [m["name"] for m in json.loads(listed.stdout)["data"]] == ["smollm2-135m"]

    created = run(
        CURL_DIR / "create_model.sh",
        "pirate",
        'Say "arr" \\ like a pirate.\n',
        "smollm2-135m",
        env=env,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    body = json.loads(created.stdout)
    assert (body["name"], body["system_prompt"]) == ("pirate", 'Say "arr" \\ like a pirate.\n')
    assert body["parameters"] == {"temperature": 0.7}

    answer = run(CURL_DIR / "generate.sh", "pirate", "Hello!", env=env)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    answer_body = json.loads(answer.stdout)
    assert answer_body["model"] == "pirate" and 0 < answer_body["completion_tokens"] <= 8

    streamed = run(CURL_DIR / "generate.sh", "pirate", "Hello!", "--stream", env=env)
    lines = [json.loads(line) for line in streamed.stdout.split("\n") if line.strip()]
    assert streamed.returncode == 0 and lines[-1]["done"] is True and len(lines) > 1

    chat = run(CURL_DIR / "chat_completions.sh", "smollm2-135m", "Hi", env=env)
    assert chat.returncode == 0, chat.stderr
    assert json.loads(chat.stdout)["choices"][0]["message"]["role"] == "assistant"
    events = run(CURL_DIR / "chat_completions.sh", "pirate", "Hi", "--stream", env=env)
    assert events.stdout.rstrip().endswith("data: [DONE]")

    deleted = run(CURL_DIR / "delete_model.sh", "pirate", env=env)
    assert deleted.returncode == 0
    assert json.loads(deleted.stdout) == {"message": "Model 'pirate' deleted."}


def test_examples_fail_with_the_problem_body_on_http_errors(service):  # noqa: F811
    missing = run(
        CURL_DIR / "delete_model.sh", "ghost", env={"BASE_URL": service, "LLM_API_KEY": KEY}
    )
    assert missing.returncode == 22
    assert json.loads(missing.stdout)["detail"].startswith("Model 'ghost' not found.")
    no_key = run(CURL_DIR / "list_models.sh", env={"BASE_URL": service, "LLM_API_KEY": ""})
    assert no_key.returncode == 22
    assert json.loads(no_key.stdout)["status"] == 401
    usage = run(CURL_DIR / "generate.sh", "only-a-model", env={"BASE_URL": service})
    assert usage.returncode == 2 and usage.stderr.startswith("usage:")


def test_new_examples_check_their_arguments_before_calling_the_api(tmp_path):
    env = {"BASE_URL": "http://127.0.0.1:9"}  # nothing listens: a call would fail with 7
    train = tmp_path / "train.csv"
    train.write_text("input,output\nq,a\n")
    for script, args, extra in [
        ("import_document.sh", ["smollm2-135m"], {}),
        ("import_document.sh", ["smollm2-135m", str(tmp_path / "missing.pdf")], {}),
        ("list_documents.sh", [], {}),
        ("delete_document.sh", ["smollm2-135m"], {}),
        ("generate_with_documents.sh", ["smollm2-135m"], {}),
        ("fine_tune.sh", ["tuned"], {}),
        ("fine_tune.sh", ["tuned", str(train), str(tmp_path / "missing.csv")], {}),
        ("fine_tune.sh", ["tuned", str(train)], {"FT_ARGS": "max_steps=2 oops"}),
        ("follow_job.sh", [], {}),
        ("follow_job.sh", ["../listModels"], {}),
        ("cancel_job.sh", ["ftjob-1", "ftjob-2"], {}),
    ]:
        result = run(CURL_DIR / script, *args, env={**env, **extra})
        assert result.returncode == 2, (script, args, result.stdout + result.stderr)
        assert result.stderr, (script, args)


FAST_RETRIEVAL = {"LLM_RAG_ALTERNATIVE_QUERIES": "0", "LLM_RAG_TOP_K": "2"}
GATE_CODE = (
    "Parking. The staff car park is on level B4 and the gate access code is ZEBRA-42. "
    "Visitors park on level B1."
)


@pytest.mark.parametrize("service", [FAST_RETRIEVAL], indirect=True, ids=["question-only"])
def test_document_examples_import_list_answer_with_sources_and_delete(service, tmp_path):  # noqa: F811
    env = {"BASE_URL": service, "LLM_API_KEY": KEY, "MAX_TOKENS": "8"}
    handbook = write_pdf(
        tmp_path / "acme, handbook.pdf",  # a comma in the path, + in the name
        [GATE_CODE, "Office pets. Only goldfish are allowed in the office."],
    )
    name = "Acme handbook (v2+).pdf"
    menu = write_pdf(tmp_path / "menu.pdf", ["The cafeteria serves lasagne every Thursday."])

    imported = run(CURL_DIR / "import_document.sh", "smollm2-135m", str(handbook), name, env=env)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    body = json.loads(imported.stdout)
    assert (body["name"], body["pages"], body["replaced"]) == (name, 2, False)
    unnamed = run(CURL_DIR / "import_document.sh", "smollm2-135m", str(menu), env=env)
    assert unnamed.returncode == 0, unnamed.stdout + unnamed.stderr
    assert json.loads(unnamed.stdout)["name"] == "menu.pdf"  # the file's name by default

    listed = run(CURL_DIR / "list_documents.sh", "smollm2-135m", env=env)
    assert listed.returncode == 0, listed.stderr
    assert sorted(d["name"] for d in json.loads(listed.stdout)["data"]) == [name, "menu.pdf"]

    question = "What is the gate access code of the staff car park?"
    answer = run(CURL_DIR / "generate_with_documents.sh", "smollm2-135m", question, name, env=env)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    sources = json.loads(answer.stdout)["sources"]
    assert {s["document"] for s in sources} == {name}  # only the document asked for
    assert any(s["page"] == 1 and "ZEBRA-42" in s["passage"] for s in sources), sources
    everything = run(CURL_DIR / "generate_with_documents.sh", "smollm2-135m", question, env=env)
    assert everything.returncode == 0, everything.stdout + everything.stderr
    sources = json.loads(everything.stdout)["sources"]  # all_documents: the best match first
    assert (sources[0]["document"], sources[0]["page"]) == (name, 1), sources

    for document in (name, "menu.pdf"):
        deleted = run(CURL_DIR / "delete_document.sh", "smollm2-135m", document, env=env)
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert json.loads(deleted.stdout) == {
            "message": f"Document {document!r} deleted from model 'smollm2-135m'."
        }
    assert (
        json.loads(run(CURL_DIR / "list_documents.sh", "smollm2-135m", env=env).stdout)["count"]
        == 0
    )
    again = run(CURL_DIR / "delete_document.sh", "smollm2-135m", name, env=env)
    assert again.returncode == 22 and json.loads(again.stdout)["status"] == 404


@pytest.mark.parametrize(
    "service", [{"LLM_JOB_POLL_SECONDS": "0.2"}], indirect=True, ids=["fast-poll"]
)
def test_fine_tune_follow_and_cancel_examples(service, tmp_path):  # noqa: F811
    env = {"BASE_URL": service, "LLM_API_KEY": KEY}
    train = tmp_path / "capitals.csv"
    rows = [
        ("France", "Paris"),
        ("Germany", "Berlin"),
        ("Italy", "Rome"),
        ("Spain", "Madrid"),
        ("Japan", "Tokyo"),
        ("Egypt", "Cairo"),
        ("Peru", "Lima"),
        ("Kenya", "Nairobi"),
    ]
    train.write_text(
        "input,output\n"
        + "".join(f"What is the capital of {country}?,{capital}.\n" for country, capital in rows)
    )

    started = run(
        CURL_DIR / "fine_tune.sh",
        "capitals-bot",
        str(train),
        env={
            **env,
            "FT_ARGS": "max_steps=2 batch_size=2 export=none eval_rows=0",
            "SYSTEM_PROMPT": 'You name capitals, "briefly".',
            "IDEMPOTENCY_KEY": "capitals-v1",
        },
    )
    assert started.returncode == 0, started.stdout + started.stderr
    job = json.loads(started.stdout)
    assert job["id"].startswith("ftjob-") and job["base_model"] == "smollm2-135m"
    spec = job["hyperparameters"]
    assert (spec["max_steps"], spec["batch_size"], spec["export"], spec["eval_rows"]) == (
        2,
        2,
        "none",
        0,
    )
    assert spec["system_prompt"] == 'You name capitals, "briefly".'

    followed = run(CURL_DIR / "follow_job.sh", job["id"], env=env, timeout=600)
    assert followed.returncode == 0, followed.stdout + followed.stderr
    lines = followed.stdout.strip().splitlines()
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert events[0]["type"] == "validating_files" and events[-1]["type"] == "succeeded"
    assert any(e["type"] == "running" for e in events)
    final = json.loads(lines[-1])  # then the job itself
    assert (final["id"], final["status"]) == (job["id"], "succeeded"), final["error"]
    assert final["progress"]["step"] == 2

    repeat = run(
        CURL_DIR / "fine_tune.sh",
        "capitals-bot",
        str(train),
        env={**env, "IDEMPOTENCY_KEY": "capitals-v1"},
    )
    assert repeat.returncode == 0, repeat.stdout + repeat.stderr
    assert json.loads(repeat.stdout)["id"] == job["id"]  # the same job, not a second one

    cancelled = run(CURL_DIR / "cancel_job.sh", job["id"], env=env)
    assert cancelled.returncode == 22
    problem = json.loads(cancelled.stdout)
    assert problem["status"] == 409 and "already succeeded" in problem["detail"]


def test_clean_vector_db_asks_then_deletes_every_models_documents(service):  # noqa: F811
    script = REPO_ROOT / "scripts" / "clean_vector_db.sh"
    env = {"BASE_URL": service, "LLM_API_KEY": KEY}
    declined = run(script, env=env, stdin="n\n")
    assert declined.returncode == 1
    assert "  smollm2-135m" in declined.stdout and "Nothing deleted." in declined.stdout
    done = run(script, "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "document(s) deleted from model 'smollm2-135m'" in done.stdout


# -- clean_ollama_cache.sh with a stand-in for the ollama CLI ----------------------------------

FAKE_OLLAMA = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/calls"
if [ "$1" = list ]; then
  printf 'NAME ID SIZE MODIFIED\\n'
  printf 'llmp/pirate:latest 1a 1 MB now\\nllmp/smollm2-135m:latest 2b 1 MB now\\n'
  printf 'llama3.2:latest 3c 2 GB now\\n'
fi
"""


@pytest.fixture
def fake_ollama(tmp_path):
    cli = tmp_path / "ollama"
    cli.write_text(FAKE_OLLAMA)
    cli.chmod(0o755)
    return cli


def test_clean_ollama_cache_removes_only_platform_models_after_confirmation(fake_ollama):
    script = REPO_ROOT / "scripts" / "clean_ollama_cache.sh"
    env = {"OLLAMA_CMD": str(fake_ollama)}
    calls = fake_ollama.parent / "calls"
    declined = run(script, env=env, stdin="\n")
    assert declined.returncode == 1 and "Nothing removed." in declined.stdout
    assert calls.read_text() == "list\n"
    confirmed = run(script, env=env, stdin="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert calls.read_text().splitlines()[1:] == [
        "list",
        "rm llmp/pirate:latest",
        "rm llmp/smollm2-135m:latest",
    ]
    assert "Removed 2 model(s)." in confirmed.stdout


def test_clean_ollama_cache_all_with_yes_does_not_ask(fake_ollama):
    script = REPO_ROOT / "scripts" / "clean_ollama_cache.sh"
    result = run(script, "--yes", "--all", env={"OLLAMA_CMD": str(fake_ollama)})
    assert result.returncode == 0
    assert "rm llama3.2:latest" in (fake_ollama.parent / "calls").read_text()
    assert run(script, "--bogus").returncode == 2
