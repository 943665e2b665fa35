"""load_base_model.py: argument handling, the offline default, Hub failures, local conversion."""

import subprocess
import sys

import pytest

from api.config import REPO_ROOT
from api.models.catalog import read_base
from api.models.provision import ProvisionError, provision_from_dir, provision_from_hf
from tests.utils.prompts import CAPITAL

SCRIPT = REPO_ROOT / "load_base_model.py"


def _run(*args, env_extra=None, data_dir):
    import os

    env = {**os.environ, "LLM_DATA_DIR": str(data_dir), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=600,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hf", "org/repo"], "--name is required"),
        (["--hf", "org/repo", "--name", "Bad/Name"], "invalid --name"),
        (["--hf", "../../etc", "--name", "ok"], "invalid --hf"),
        (["--hf", "no-slash", "--name", "ok"], "invalid --hf"),
        (["--hf", "a/b", "--from-dir", "/tmp", "--name", "ok"], "not allowed with argument"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(tmp_path, args, message):
    result = _run(*args, data_dir=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_unreachable_hub_fails_cleanly_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    models = tmp_path / "models"
    with pytest.raises(ProvisionError, match="Could not download 'org/some-model'"):
        provision_from_hf(models, repo_id="org/some-model", name="some-model", say=lambda _: None)
    assert [p.name for p in models.iterdir()] == [".some-model.lock"]  # empty, never listed


def test_cli_reports_unreachable_hub(tmp_path):
    result = _run(
        "--hf",
        "org/some-model",
        "--name",
        "some-model",
        data_dir=tmp_path,
        env_extra={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2"},
    )
    assert result.returncode == 1
    assert "error: Could not download 'org/some-model' from the Hugging Face Hub" in result.stderr
    assert not (tmp_path / "models" / "some-model").exists()


def test_default_base_is_idempotent(tmp_path, base_models_dir):
    result = _run(data_dir=tmp_path, env_extra={"LLM_BASE_MODELS_DIR": str(base_models_dir)})
    assert result.returncode == 0, result.stderr
    assert "already provisioned" in result.stdout


def test_default_base_has_gguf_and_safetensors_checkpoint(base_models_dir):
    base = read_base(base_models_dir / "smollm2-135m")
    assert base is not None
    assert base.gguf_path.read_bytes()[:4] == b"GGUF"
    hf = base.hf_path
    assert (hf / "model.safetensors").is_file()
    assert (hf / "config.json").is_file()
    assert (
        "chat_template" in (hf / "tokenizer_config.json").read_text()
        or (hf / "chat_template.jinja").is_file()
    )
    assert not list(hf.glob("*.bin"))


def test_from_dir_refuses_pickled_weights(tmp_path):
    src = tmp_path / "ckpt"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ProvisionError, match="no \\*.safetensors weights"):
        provision_from_dir(tmp_path / "models", source_dir=src, name="pickled", say=lambda _: None)
    assert [p.name for p in (tmp_path / "models").iterdir()] == [".pickled.lock"]


def test_provisioning_waits_for_another_provisioning_of_the_same_base(tmp_path, base_models_dir):
    """Two `make` commands (or test processes) at once: the second waits, then finds it done."""
    import threading

    from api.models.provision import DEFAULT_BASE, _exclusive, provision_smollm2

    models = tmp_path / "models"
    models.mkdir()
    released = threading.Event()

    def first() -> None:  # holds the lock while "provisioning", then puts the base in place
        with _exclusive(models, DEFAULT_BASE):
            entered.set()
            released.wait(5)
            (models / DEFAULT_BASE).symlink_to(base_models_dir / DEFAULT_BASE)

    entered = threading.Event()
    holder = threading.Thread(target=first)
    holder.start()
    entered.wait(5)
    threading.Timer(0.5, released.set).start()
    said: list[str] = []
    info = provision_smollm2(models, cache_dir=tmp_path / "no-cache", say=said.append)
    holder.join()
    assert released.is_set()
    assert said == [f"base model {DEFAULT_BASE} already provisioned in {models / DEFAULT_BASE}"]
    assert info.name == DEFAULT_BASE


@pytest.mark.slow
def test_from_dir_converts_a_checkpoint_that_then_serves(tmp_path, base_models_dir, make_client):
    base = read_base(base_models_dir / "smollm2-135m")
    models = tmp_path / "models"
    info = provision_from_dir(models, source_dir=base.hf_path, name="smol-copy", say=lambda _: None)
    assert info.gguf_path.read_bytes()[:4] == b"GGUF"
    client = make_client(base_models_dir=models)
    assert [m["name"] for m in client.get("/listModels").json()["data"]] == ["smol-copy"]
    r = client.post(
        "/generate",
        json={
            "model": "smol-copy",
            "system": "You are a helpful assistant.",
            "prompt": CAPITAL,
            "options": {"temperature": 0, "max_tokens": 40},
        },
    )
    assert r.status_code == 200, r.text
    assert "paris" in r.json()["response"].lower()
