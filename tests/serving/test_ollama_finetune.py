"""Fine-tuning on the Ollama backend: what Ollama-only bases and adapter exports refuse."""

import json
import re
from pathlib import Path

import pytest
from gguf import GGUFWriter

from api.config import REPO_ROOT, Settings
from api.errors import InvalidInput
from api.finetune.service import _base_checkpoint
from api.finetune.spec import FineTuneSpec
from api.models.catalog import BaseCatalog, BaseModelInfo, write_manifest
from api.serving.ollama_adapters import NO_ADAPTER_ARCHITECTURES, OLLAMA_VERSION, adapter_problem
from tests.utils.ollama_app import app_client

CSV = ("t.csv", b"input,output\nHi,Hello\n", "text/csv")


def gguf_with_architecture(path: Path, arch: str) -> Path:
    writer = GGUFWriter(str(path), arch)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def trainable_base(models_dir: Path, name: str, arch: str) -> Path:
    """A provisioned base with an HF config and a GGUF of `arch` (no weights: never loaded)."""
    directory = models_dir / name
    (directory / "hf").mkdir(parents=True)
    (directory / "hf" / "config.json").write_text(json.dumps({"model_type": arch}))
    gguf_with_architecture(directory / "model.gguf", arch)
    write_manifest(
        BaseModelInfo(
            name=name,
            directory=directory,
            gguf_file="model.gguf",
            hf_dir="hf",
            source="test",
            created_at="",
        )
    )
    return directory


def test_the_architecture_is_read_from_the_base_gguf(tmp_path):
    qwen3 = gguf_with_architecture(tmp_path / "q.gguf", "qwen3")
    llama = gguf_with_architecture(tmp_path / "l.gguf", "llama")
    assert "qwen3" in NO_ADAPTER_ARCHITECTURES and "llama" not in NO_ADAPTER_ARCHITECTURES
    assert adapter_problem("q", qwen3).startswith(
        "export=adapter cannot be served by Ollama for base 'q': its architecture 'qwen3'"
    )
    assert adapter_problem("l", llama) is None
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"GGUF\x03\x00tiny-weights")
    assert adapter_problem("x", not_gguf) is None  # unreadable: the export itself will tell


def test_fine_tuning_an_ollama_library_base_is_422_saying_how_to_provision(tmp_path, double):
    double.pull("llama3.2:3b")
    with app_client(tmp_path, double.url) as client:
        r = client.post(
            "/fine_tune_model",
            data={"model_name": "tuned", "base_model": "llama3.2-3b"},
            files={"train_file": CSV},
        )
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == (
            "Base model 'llama3.2-3b' is Ollama's model 'llama3.2:3b': Ollama keeps only GGUF "
            "weights, and fine-tuning needs a safetensors (Hugging Face) base. Provision one "
            "with `python load_base_model.py --hf ORG/REPO --name NAME` (or --from-dir PATH) "
            "and fine-tune that; its results are served through Ollama too."
        )
        assert client.get("/jobs").json()["count"] == 0


def test_an_adapter_export_on_a_base_ollama_cannot_apply_lora_to_is_422(tmp_path, double):
    trainable_base(tmp_path / "models", "qwen-small", "qwen3")
    with app_client(tmp_path, double.url) as client:
        r = client.post(
            "/fine_tune_model",
            data={"model_name": "tuned", "export": "adapter", "base_model": "qwen-small"},
            files={"train_file": CSV},
        )
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == (
            "export=adapter cannot be served by Ollama for base 'qwen-small': its architecture "
            "'qwen3' runs on Ollama's own engine, which does not apply LoRA adapters (Ollama "
            "0.20.7). Use export=merged (the adapter merged into the weights), or the llamacpp "
            "backend."
        )
        assert client.get("/jobs").json()["count"] == 0

        # a re-export of an earlier job's adapter is refused the same way
        store = client.app.state.job_store
        source = store.create(
            model_name="old",
            base_model="qwen-small",
            spec={"model_name": "old", "base_model": "qwen-small", "export": "none"},
            jobs_dir=client.app.state.settings.jobs_dir,
        )
        (source.job_dir / "adapter").mkdir(parents=True)
        (source.job_dir / "adapter" / "adapter_config.json").write_text("{}")
        store.transition(
            source.id, "failed", allowed_from=("validating_files",), message="x", error="x"
        )
        r = client.post(
            f"/jobs/{source.id}/export", json={"export": "adapter", "model_name": "again"}
        )
        assert r.status_code == 422, r.text
        assert "architecture 'qwen3'" in r.json()["detail"]


@pytest.mark.parametrize(
    "backend, arch, refused",
    [("ollama", "qwen3", True), ("ollama", "llama", False), ("llamacpp", "qwen3", False)],
)
def test_only_the_ollama_backend_checks_the_adapter_architecture(tmp_path, backend, arch, refused):
    base = trainable_base(tmp_path / "models", "b", arch)
    settings = Settings(data_dir=tmp_path, base_models_dir=tmp_path / "models", backend=backend)
    spec = FineTuneSpec(model_name="t", base_model="b", export="adapter")
    catalog = BaseCatalog(tmp_path / "models")
    if refused:
        with pytest.raises(InvalidInput, match=f"architecture '{arch}'"):
            _base_checkpoint(spec, catalog, settings)
    else:
        assert _base_checkpoint(spec, catalog, settings) == base / "hf"
    merged = spec.model_copy(update={"export": "merged"})
    assert _base_checkpoint(merged, catalog, settings) == base / "hf"


def test_the_adapter_list_was_read_from_the_ollama_that_compose_runs():
    """When the image moves, re-read OllamaEngineRequired (fs/ggml/ggml.go) for that version:
    Ollama 0.30+ serves every GGUF through llama-server and applies adapters everywhere."""
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    assert re.findall(r"image:\s*ollama/ollama:(\S+)", compose) == [OLLAMA_VERSION]
