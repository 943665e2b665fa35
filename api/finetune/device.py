"""Which device a fine-tuning job will train on, found once per API process.

The API process does not import torch (seconds to import, and the CUDA runtime holds GPU
memory): the probe runs `python -m api.finetune.device` in a child process with the same
interpreter and environment as the recipe, so it sees what a job will see. The answer is
cached for the life of the process; start-up warms it in the background, and
LLM_REQUIRE_CUDA waits for it.
"""

import importlib.metadata
import json
import logging
import subprocess
import sys
import threading
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from api.config import REPO_ROOT
from api.finetune.precision import resolve_precision
from api.finetune.spec import BNB_OPTIMIZERS, PAGED_OPTIMIZERS, FineTuneSpec

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 300.0  # a cold torch import plus CUDA start-up on a busy host


@dataclass(frozen=True)
class TrainingDevice:
    cuda: bool
    gpus: tuple[str, ...] = ()
    torch: str | None = None  # torch.__version__
    torch_cuda: str | None = None  # torch.version.cuda: None for a CPU-only build
    bitsandbytes: str | None = None  # its version; None when it cannot be imported
    notes: tuple[str, ...] = field(default=())  # CUDA warnings, import errors, probe failures
    bf16: bool | None = None  # torch.cuda.is_bf16_supported(); None: not reported
    cpu_bf16_speedup: float | None = None  # CPU bf16/fp32 matmul speed (api/finetune/cpu_speed.py)
    flash_attn: str | None = None  # its version where usable (CUDA, Ampere or newer); else None
    liger_kernel: str | None = None  # its version where importable on CUDA; else None

    @classmethod
    def of(cls, found: dict[str, Any]) -> "TrainingDevice":
        """From what inspect() reported."""
        return cls(
            cuda=bool(found["cuda"]),
            gpus=tuple(found["gpus"]),
            torch=found["torch"],
            torch_cuda=found["torch_cuda"],
            bitsandbytes=found["bitsandbytes"],
            notes=tuple(found["notes"]),
            bf16=found.get("bf16"),
            cpu_bf16_speedup=found.get("cpu_bf16_speedup"),
            flash_attn=found.get("flash_attn"),
            liger_kernel=found.get("liger_kernel"),
        )

    @property
    def kind(self) -> str:
        return "cuda" if self.cuda else "cpu"

    @property
    def qlora(self) -> bool:
        """bits 4/8 and bitsandbytes' optimizers can run: a CUDA GPU and bitsandbytes."""
        return self.cuda and self.bitsandbytes is not None

    def cuda_state(self) -> str:
        """What torch said, for messages: `torch.cuda.is_available()` and why."""
        build = (
            f"torch {self.torch} built for CUDA {self.torch_cuda}"
            if self.torch_cuda
            else f"torch {self.torch}, a CPU-only build"
            if self.torch
            else "torch could not be inspected"
        )
        said = f"torch.cuda.is_available() is {self.cuda} ({build}"
        return said + "".join(f"; {n}" for n in self.notes) + ")"

    def public(self) -> dict[str, Any]:
        return {"device": self.kind, **asdict(self), "qlora": self.qlora}


def require_cuda_message(device: TrainingDevice) -> str:
    return (
        f"LLM_REQUIRE_CUDA is set but {device.cuda_state()}, so training would run on "
        "the CPU. The NVIDIA driver, the image and torch disagree: check that the "
        "container sees the GPU (nvidia-container-toolkit, the compose GPU reservation, "
        "`nvidia-smi` inside it), that torch is a CUDA build rather than +cpu, and that "
        "the driver supports torch's CUDA version. Unset LLM_REQUIRE_CUDA to train on "
        "the CPU on purpose."
    )


def fit(spec: FineTuneSpec, device: TrainingDevice) -> tuple[FineTuneSpec, list[str]]:
    """The spec with the device's defaults filled in (bits, optimizer), and every reason
    this device cannot train it (`field: message`). The API checks this at submission,
    the recipe again at run time."""
    bits = spec.bits or (4 if device.cuda else 16)
    # FSDP shards the optimizer state already; FSDP-QLoRA as PEFT runs it uses plain AdamW
    # (peft examples/sft/run_peft_qlora_fsdp.sh)
    paged_default = bits < 16 and spec.sharding != "fsdp"
    optimizer = spec.optimizer or ("paged_adamw_8bit" if paged_default else "adamw_torch")
    no_bnb = (
        "; ".join(n for n in device.notes if "bitsandbytes" in n)
        or "bitsandbytes cannot be imported"
    )
    problems = []
    if bits < 16 and not device.cuda:
        problems.append(
            f"bits: bits={bits} (QLoRA/int8) needs a CUDA GPU; this host has none: "
            f"{device.cuda_state()}. Use bits=16 for plain LoRA on the CPU."
        )
    elif bits < 16 and device.bitsandbytes is None:
        problems.append(
            f"bits: bits={bits} (QLoRA/int8) needs bitsandbytes ({no_bnb}); install "
            "the version pinned in pyproject.toml, or use bits=16."
        )
    paged = "paged " if spec.optimizer in PAGED_OPTIMIZERS else ""
    if spec.optimizer in BNB_OPTIMIZERS and not device.cuda:  # a default is not the user's
        problems.append(
            f"optimizer: {optimizer} is a bitsandbytes {paged}optimizer, which needs "
            f"a CUDA GPU; this host has none: {device.cuda_state()}. Use adamw_torch "
            "or adamw_torch_fused on the CPU."
        )
    elif spec.optimizer in BNB_OPTIMIZERS and device.bitsandbytes is None:
        problems.append(
            f"optimizer: {optimizer} needs bitsandbytes ({no_bnb}); install the "
            "version pinned in pyproject.toml, or use adamw_torch."
        )
    if spec.liger_kernel and not device.cuda:
        problems.append(
            "liger_kernel: Liger's kernels are Triton GPU kernels and need a CUDA GPU; this "
            f"host has none: {device.cuda_state()}. Leave liger_kernel false on the CPU."
        )
    elif spec.liger_kernel and device.liger_kernel is None:
        why = "; ".join(n for n in device.notes if "liger" in n) or "it is not installed"
        problems.append(
            f"liger_kernel: needs the liger-kernel package ({why}); install the version "
            "pinned in pyproject.toml's `gpu` extra (pip install '.[gpu]'), or leave "
            "liger_kernel false."
        )
    precision, more = resolve_precision(spec.mixed_precision, device)
    problems += more
    resolved = {"bits": bits, "optimizer": optimizer, "mixed_precision": precision}
    return spec.model_copy(update=resolved), problems


# ---------------------------------------------------------------- the probe (child process)
def inspect() -> dict[str, Any]:
    """Run in the child: import torch and bitsandbytes and report what they see."""
    notes: list[str] = []
    import torch

    with warnings.catch_warnings(record=True) as caught:  # e.g. "driver too old (found ...)"
        warnings.simplefilter("always")
        cuda = torch.cuda.is_available()
    notes += [str(w.message).strip() for w in caught]
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    try:
        import bitsandbytes
        from bitsandbytes.cextension import ErrorHandlerMockBNBNativeLibrary, lib

        bnb: str | None = bitsandbytes.__version__
        # On CUDA a native library that failed to load (no build for torch's CUDA version, a
        # missing libcudart) is replaced by a stand-in that fails at the first 4-bit op.
        if cuda and isinstance(lib, ErrorHandlerMockBNBNativeLibrary):
            bnb = None
            notes.append(f"bitsandbytes cannot load its CUDA library: {lib.error_msg}")
    except Exception as exc:  # not installed, or broken
        bnb = None
        notes.append(f"bitsandbytes cannot be imported: {type(exc).__name__}: {exc}")
    return {
        "cuda": cuda,
        "gpus": gpus,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "bitsandbytes": bnb,
        "notes": notes,
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "cpu_bf16_speedup": None if cuda else _cpu_bf16_speedup(notes),
        "flash_attn": _flash_attn(notes) if cuda else None,
        "liger_kernel": _liger_kernel(notes) if cuda else None,
    }


def _flash_attn(notes: list[str]) -> str | None:
    """flash-attn 2's version where transformers can use it here (api/finetune/attention.py)."""
    try:
        found = importlib.metadata.version("flash-attn")
    except importlib.metadata.PackageNotFoundError:
        return None  # optional: not installed is the usual case
    try:
        import flash_attn  # noqa: F401  (a wheel built for another torch fails here)
        import torch

        major, minor = torch.cuda.get_device_capability(0)
    except Exception as exc:
        notes.append(f"flash-attn {found} cannot be imported: {type(exc).__name__}: {exc}")
        return None
    if not found.startswith("2.") or major < 8:
        notes.append(
            f"flash-attn {found} is not used: attention takes flash-attn 2 on an Ampere or "
            f"newer GPU (compute capability 8.0; this one has {major}.{minor})"
        )
        return None
    return found


def _liger_kernel(notes: list[str]) -> str | None:
    """liger-kernel's version where it imports (the spec's `liger_kernel`)."""
    try:
        found = importlib.metadata.version("liger-kernel")
    except importlib.metadata.PackageNotFoundError:
        return None
    try:
        import liger_kernel.transformers  # noqa: F401
    except Exception as exc:
        notes.append(f"liger-kernel {found} cannot be imported: {type(exc).__name__}: {exc}")
        return None
    return found


def _cpu_bf16_speedup(notes: list[str]) -> float | None:
    try:
        from api.finetune.cpu_speed import measure

        return measure()["bf16_speedup"]
    except Exception as exc:  # a probe that cannot time matmuls still reports the device
        notes.append(f"bf16 matmul speed not measured: {type(exc).__name__}: {exc}")
        return None


def probe(command: list[str] | None = None) -> TrainingDevice:
    """Ask a child process; a probe that fails reports CPU with the reason."""
    command = command or [sys.executable, "-m", "api.finetune.device"]
    try:
        done = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return TrainingDevice(
            cuda=False, notes=(f"the device probe took over {PROBE_TIMEOUT_S:.0f} s",)
        )
    lines = done.stdout.strip().splitlines()
    try:  # the report is the last line: libraries may print before it
        return TrainingDevice.of(json.loads(lines[-1]))
    except (IndexError, ValueError, KeyError, TypeError):
        tail = (done.stderr or done.stdout).strip()[-500:]
        return TrainingDevice(
            cuda=False, notes=(f"the device probe failed (exit code {done.returncode}): {tail}",)
        )


# ---------------------------------------------------------------- the cache (API process)
_lock = threading.Lock()
_known: TrainingDevice | None = None


def training_device() -> TrainingDevice:
    """The probe's answer, found once per process (the first caller waits for it)."""
    global _known
    with _lock:
        if _known is None:
            found = probe()
            if _known is None:  # a test may have set it meanwhile
                _known = found
        return _known


def known_device() -> TrainingDevice | None:
    """The probe's answer if it has come, without waiting (for /health)."""
    return _known


def check_at_start(*, require_cuda: bool) -> None:
    """At API start-up. With LLM_REQUIRE_CUDA: wait for the probe and refuse to start
    without CUDA. Otherwise probe in the background, so that the first /health or
    submission rarely waits for it."""
    if not require_cuda:
        threading.Thread(target=training_device, name="device-probe", daemon=True).start()
        return
    found = training_device()
    if not found.cuda:
        raise RuntimeError(require_cuda_message(found))
    log.info("training on CUDA: %s", ", ".join(found.gpus))
    if not found.qlora:
        log.warning(
            "CUDA is available but bitsandbytes is not (%s): bits 4/8 and the paged "
            "optimizers will be refused",
            "; ".join(found.notes),
        )


if __name__ == "__main__":
    print(json.dumps(inspect()))
