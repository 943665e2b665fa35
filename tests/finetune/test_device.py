"""The training device: the probe (a real child process), and what each device lets a job do."""

import importlib.metadata
import json
import sys
import typing

import pytest

from api.finetune import device
from api.finetune.device import TrainingDevice, fit, probe, require_cuda_message
from api.finetune.spec import FineTuneSpec, Optimizer
from tests.utils.devices import CPU, CUDA_NO_BNB, H200, OLD_DRIVER, T4


def spec(**fields: object) -> FineTuneSpec:
    return FineTuneSpec(model_name="tuned", **fields)  # type: ignore[arg-type]


def test_probe_reports_what_torch_sees_in_a_child_process(monkeypatch):
    import torch

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the same answer on a GPU host
    found = probe()
    assert found == TrainingDevice(
        cuda=False,
        torch=torch.__version__,
        torch_cuda=torch.version.cuda,
        bitsandbytes=importlib.metadata.version("bitsandbytes"),
        notes=found.notes,
        bf16=False,
        cpu_bf16_speedup=found.cpu_bf16_speedup,
    )
    assert found.cpu_bf16_speedup is not None and found.cpu_bf16_speedup > 0  # measured
    assert found.kind == "cpu" and not found.qlora
    assert "bitsandbytes" not in " ".join(found.notes)  # it imports on a host without CUDA


def test_a_probe_that_fails_reports_cpu_with_the_reason():
    found = probe([sys.executable, "-c", "import sys; sys.exit('libcuda.so: bad ELF header')"])
    assert not found.cuda and found.torch is None
    assert found.notes == ("the device probe failed (exit code 1): libcuda.so: bad ELF header",)
    assert "torch could not be inspected; the device probe failed" in found.cuda_state()


def test_the_probe_runs_once_per_process(monkeypatch):
    calls = []
    with device._lock:  # a probe started by an earlier test's app has finished
        monkeypatch.setattr(device, "_known", None)
    monkeypatch.setattr(device, "probe", lambda: calls.append(1) or H200)
    assert device.training_device() is H200
    assert device.training_device() is H200
    assert calls == [1]


def test_defaults_follow_the_device():
    on_cpu, problems = fit(spec(), CPU)
    assert (on_cpu.bits, on_cpu.optimizer, problems) == (16, "adamw_torch", [])
    on_gpu, problems = fit(spec(), H200)
    assert (on_gpu.bits, on_gpu.optimizer, problems) == (4, "paged_adamw_8bit", [])
    plain, _ = fit(spec(bits=16), H200)
    assert (plain.bits, plain.optimizer) == (16, "adamw_torch")
    chosen, _ = fit(spec(bits=8, optimizer="paged_adamw_32bit"), H200)
    assert (chosen.bits, chosen.optimizer) == (8, "paged_adamw_32bit")
    fused, problems = fit(spec(optimizer="adamw_torch_fused"), CPU)
    assert (fused.optimizer, problems) == ("adamw_torch_fused", [])


def test_quantised_bits_without_cuda_name_the_field_and_what_torch_said():
    _, problems = fit(spec(bits=4), CPU)
    assert problems == [
        "bits: bits=4 (QLoRA/int8) needs a CUDA GPU; this host has none: "
        "torch.cuda.is_available() is False (torch 2.13.0+cpu, a CPU-only build). "
        "Use bits=16 for plain LoRA on the CPU."
    ]
    _, problems = fit(spec(bits=8), OLD_DRIVER)
    assert problems[0].startswith(
        "bits: bits=8 (QLoRA/int8) needs a CUDA GPU; this host has "
        "none: torch.cuda.is_available() is False (torch "
        "2.13.0+cu130 built for CUDA 13.0; CUDA initialization: The "
        "NVIDIA driver on your system is too old (found version "
        "12040).)"
    )


def test_paged_optimizers_without_cuda_are_refused_with_every_problem_at_once():
    _, problems = fit(spec(optimizer="paged_adamw_8bit"), CPU)
    assert problems == [
        "optimizer: paged_adamw_8bit is a bitsandbytes paged optimizer, which needs a CUDA "
        "GPU; this host has none: torch.cuda.is_available() is False (torch 2.13.0+cpu, a "
        "CPU-only build). Use adamw_torch or adamw_torch_fused on the CPU."
    ]
    _, problems = fit(spec(bits=8, optimizer="paged_adamw_32bit"), CPU)
    assert [p.split(":")[0] for p in problems] == ["bits", "optimizer"]


def test_cuda_without_bitsandbytes_refuses_what_needs_it():
    _, problems = fit(spec(), CUDA_NO_BNB)  # the default on CUDA is 4-bit
    assert problems == [
        "bits: bits=4 (QLoRA/int8) needs bitsandbytes (bitsandbytes cannot be imported: "
        "ModuleNotFoundError: No module named 'bitsandbytes'); install the version pinned in "
        "pyproject.toml, or use bits=16."
    ]
    _, problems = fit(spec(bits=16, optimizer="paged_adamw_32bit"), CUDA_NO_BNB)
    assert problems[0].startswith("optimizer: paged_adamw_32bit needs bitsandbytes")
    assert fit(spec(bits=16), CUDA_NO_BNB)[1] == []


def test_health_view_of_a_device():
    assert H200.public() == {
        "device": "cuda",
        "cuda": True,
        "gpus": ("NVIDIA H200",),
        "torch": "2.13.0+cu130",
        "torch_cuda": "13.0",
        "bitsandbytes": "0.50.2",
        "notes": (),
        "bf16": True,
        "cpu_bf16_speedup": None,  # measured on CPU hosts only
        "flash_attn": None,  # probed on CUDA hosts only
        "liger_kernel": None,
        "qlora": True,
    }
    assert CUDA_NO_BNB.public()["qlora"] is False and CPU.public()["device"] == "cpu"


def test_require_cuda_message_says_what_to_check():
    message = require_cuda_message(OLD_DRIVER)
    assert message.startswith(
        "LLM_REQUIRE_CUDA is set but torch.cuda.is_available() is False "
        "(torch 2.13.0+cu130 built for CUDA 13.0; CUDA initialization: "
        "The NVIDIA driver on your system is too old"
    )
    assert "torch is a CUDA build rather than +cpu" in message
    assert "Unset LLM_REQUIRE_CUDA to train on the CPU on purpose." in message


@pytest.mark.parametrize("name", typing.get_args(Optimizer))
def test_every_optimizer_is_one_transformers_builds(name, tmp_path):
    """The names are TrainingArguments' own, and the paged ones come from bitsandbytes."""
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), optim=name, use_cpu=True, report_to="none")
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    if name.startswith("paged_") or name == "adamw_8bit":
        assert cls.__module__.startswith("bitsandbytes.optim")
        assert kwargs["is_paged"] is name.startswith("paged_")
        assert kwargs["optim_bits"] == (8 if name.endswith("8bit") else 32)
    elif name == "adafactor":
        assert cls.__name__ == "Adafactor"
    else:
        assert cls.__module__.startswith("torch.optim")
        assert kwargs.get("fused", False) is name.endswith("_fused")


def test_mixed_precision_follows_the_device():
    def resolved(device, choice="auto"):
        fitted, problems = fit(spec(bits=16, mixed_precision=choice), device)
        return fitted.mixed_precision, problems

    assert resolved(H200) == ("bf16", [])
    assert resolved(T4) == ("fp16", [])  # no bf16: fp16 with the Trainer's loss scaler
    assert resolved(CPU) == ("fp32", [])
    assert resolved(CPU, "bf16") == ("bf16", [])  # CPU autocast
    assert resolved(CPU, "fp16")[1][0].startswith(
        "mixed_precision: fp16 needs a CUDA GPU (fp16 autocast with a loss scaler); this "
        "host has none: torch.cuda.is_available() is False"
    )
    assert resolved(T4, "bf16")[1] == [
        "mixed_precision: bf16 is not supported by this GPU (Tesla T4); use fp16 (with loss "
        "scaling) or auto."
    ]


def test_auto_on_the_cpu_follows_the_measured_bf16_speed():
    from dataclasses import replace

    from api.finetune.precision import precision_reason

    def auto(speedup):
        device = replace(CPU, cpu_bf16_speedup=speedup)
        fitted, problems = fit(spec(bits=16, mixed_precision="auto"), device)
        assert problems == []
        return fitted.mixed_precision, precision_reason("auto", fitted.mixed_precision, device)

    assert auto(6.5) == ("bf16", "bf16: auto on the CPU, bf16 matmuls measured 6.5x fp32 (faster)")
    assert auto(0.4) == (
        "fp32",
        "fp32: auto on the CPU, bf16 matmuls measured 0.4x fp32 (under the 1.3x needed)",
    )
    assert auto(None) == ("fp32", "fp32: auto on the CPU, bf16 matmul speed not measured")
    assert precision_reason("bf16", "bf16", CPU) == "bf16: chosen in the request"
    assert precision_reason("auto", "fp16", T4).startswith("fp16 with loss scaling: auto on Tesla")


def test_the_cpu_matmul_speed_is_measured_once_per_host(tmp_path, monkeypatch):
    from api.finetune import cpu_speed

    cache = tmp_path / "cpu-matmul.json"
    first = cpu_speed.measure(cache)
    assert first["fp32_gflops"] > 0 and first["bf16_gflops"] > 0
    assert first["bf16_speedup"] > 0
    monkeypatch.setattr(cpu_speed, "_gflops", lambda *a, **k: pytest.fail("measured again"))
    assert cpu_speed.measure(cache) == first  # from the cache
    assert len(json.loads(cache.read_text())) == 1
