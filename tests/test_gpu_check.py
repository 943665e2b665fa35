"""The GPU check (`make gpu-check`, scripts/gpu_check.py and its helpers): what can be checked
without a GPU. The skip path runs as a process; the peak table, the figures section and the
arguments are checked as functions. The GPU steps themselves run only on a CUDA host."""

import json
import math
import os
import subprocess
import sys

import pytest

from api.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))

import bench_doc  # noqa: E402
import bench_finetune  # noqa: E402
import gpu_bench  # noqa: E402
import gpu_check  # noqa: E402
import gpu_fsdp_check  # noqa: E402
import gpu_gptq_check  # noqa: E402

NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # skips even where a GPU is present


def test_script_without_cuda_says_skipped_exits_0_and_writes_nothing(tmp_path):
    report = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "gpu_check.py"),
            "--report",
            str(report),
            "--artifacts",
            str(tmp_path / "out"),
        ],
        cwd=REPO_ROOT,
        env=NO_GPU,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("skipped: no CUDA"), done.stdout
    assert not report.exists() and not (tmp_path / "out").exists()


def test_make_gpu_check_runs_the_script_with_the_given_python(tmp_path):
    report = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [
            "make",
            "-s",
            "gpu-check",
            f"GPU_PY={sys.executable}",
            f"GPU_CHECK_ARGS=--report {report}",
        ],
        cwd=REPO_ROOT,
        env=NO_GPU,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped: no CUDA" in done.stdout
    assert "creating the virtual environment" not in done.stdout  # no set-up with GPU_PY
    assert not report.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--skip-api", "--skip-bench", "--skip-gptq"], "leave nothing to check"),
        (["--bench-steps", "1"], "--bench-steps must be 2 or more"),
        (["--steps", "0"], "must be 1 or more, not 0"),
        (["--bench-sentences", "-1"], "--bench-sentences must be 0 or more"),
    ],
)
def test_bad_arguments_exit_2_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        gpu_check.parse(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_give_thousands_of_tokens_a_benchmark_step(base_models_dir):
    args = gpu_check.parse([])
    assert (args.steps, args.bench_steps, args.bench_batch, args.budget) == (8, 6, 16, 480)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_models_dir / "smollm2-135m" / "hf")
    rows = bench_finetune.rows(args.bench_batch, args.bench_sentences)
    lengths = [
        len(tokenizer.apply_chat_template(chat, tokenize=True)["input_ids"]) for chat in rows
    ]
    assert sum(lengths) > 5000  # the old benchmark fed ~280 tokens a step
    assert max(lengths) < 512  # the recipe's max_len: no row is reported as too long


def test_longer_rows_only_add_sentences():
    plain, long = bench_finetune.rows(8), bench_finetune.rows(8, sentences=10)
    assert [c[0] for c in plain] == [c[0] for c in long]  # same questions
    for short, longer in zip(plain, long, strict=True):
        assert len(longer[1]["content"]) > len(short[1]["content"]) + 300
        assert longer[1]["content"].endswith(bench_finetune.SIGN_OFF)


def test_four_bit_weights_count_their_unpacked_elements():
    class Packed:  # a bitsandbytes Params4bit keeps two weights per byte
        quant_state = type("State", (), {"shape": (4096, 14336)})()

        def numel(self):
            return 4096 * 14336 // 2

    class Plain:
        def numel(self):
            return 10

    assert bench_finetune.unpacked_numel(Packed()) == 4096 * 14336
    assert bench_finetune.unpacked_numel(Plain()) == 10


@pytest.mark.parametrize(
    ("name", "tflops", "label"),
    [
        ("NVIDIA H200", 989.0, "H200 SXM"),
        ("NVIDIA H200 NVL", 835.0, "H200 NVL"),
        ("NVIDIA H100 80GB HBM3", 989.0, "H100 SXM"),
        ("NVIDIA H100 PCIe", 756.0, "H100 PCIe"),
        ("NVIDIA H100 NVL", 835.0, "H100 NVL"),
        ("NVIDIA GH200 480GB", 989.0, "GH200"),
        ("NVIDIA A100-SXM4-80GB", 312.0, "A100"),
        ("NVIDIA A100 80GB PCIe", 312.0, "A100"),
    ],
)
def test_peak_table_matches_device_names(name, tflops, label):
    assert gpu_bench.table_peak(name) == (tflops, label)


def test_unknown_gpu_uses_the_measured_peak():
    assert gpu_bench.table_peak("NVIDIA GeForce RTX 4090") is None
    peak = gpu_bench.choose_peak("NVIDIA GeForce RTX 4090", 161.5)
    assert peak["tflops"] == 161.5 and peak["source"].startswith("measured")
    known = gpu_bench.choose_peak("NVIDIA H200", 781.0)
    assert known["tflops"] == 989.0 and known["measured_tflops"] == 781.0


def _side(rate: float, peak_mb: float) -> dict:
    return {
        "base_parameters": 7_000_000_000,
        "tokens_per_second": rate,
        "steps": 6,
        "trained_tokens": 5 * 6400,
        "cuda_peak_mb": peak_mb,
        "wall_s": 70.0,
    }


def _result(**parts) -> dict:
    return {
        "when": "2026-12-03 15:00 UTC",
        "device": "NVIDIA H200 (140 GiB)",
        "torch": "2.11.0+cu130 (CUDA 13.0)",
        "versions": {"trl": "1.16.0"},
        "budget_s": 480,
        "total_s": 301.0,
        **parts,
    }


BENCH = {
    "device": "NVIDIA H200",
    "steps": 6,
    "batch": 16,
    "sentences": 40,
    "build_s": 41.0,
    "peak": gpu_bench.choose_peak("NVIDIA H200", 780.0),
    "baseline": _side(2000.0, 20480.0),
    "ours": _side(3000.0, 16384.0),
}
API = {
    "base": "smollm2-standin",
    "base_described": "a stand-in",
    "steps": 8,
    "job_s": 52.0,
    "generate_s": 0.4,
    "generate": {
        "response": "The capital of Germany is Berlin.",
        "completion_tokens": 9,
        "done_reason": "stop",
    },
    "job": {
        "metrics": {
            "bits": 4,
            "device": "cuda",
            "train_loss_first": 2.5,
            "train_loss_last": 0.75,
            "eval_loss": 0.8,
            "export": {
                "mode": "merged",
                "files": {"Q4_K_M": "/x.gguf"},
                "timings": {"merge_s": 1.25, "convert_s": 3.0},
            },
        }
    },
}


def test_section_with_both_parts_gives_the_figures():
    text = gpu_check.format_section(_result(api=API, bench=BENCH))
    assert text.startswith("## GPU check\n\n`make gpu-check`")
    assert "301 s (within the 480 s target)" in text
    assert "8 steps with bits=4 on cuda, train loss 2.500 → 0.750, eval loss 0.800" in text
    assert "export merged to Q4_K_M (merge 1.2 s, convert 3.0 s)" in text
    assert "9 tokens in 0.4 s (stop): 'The capital of Germany is Berlin.'" in text
    # 4 x 7e9 x 3000 tokens/s = 84 TFLOP/s, over the H200's 989 = 8.5%
    assert "| ours: the recipe | 3000 | 6400 | 16.0 | 84.0 | 8.5% | 70 |" in text
    assert "| baseline: TRL defaults | 2000 | 6400 | 20.0 | 56.0 | 5.7% | 70 |" in text
    assert "989 TFLOP/s (H200 SXM datasheet, dense bf16; a bf16 8192³ matmul measured 780" in text
    assert "Ours vs baseline: 1.50x tokens/s, 0.80x peak memory." in text
    assert "nan" not in text.lower()


def test_section_says_when_the_job_trained_on_two_gpus():
    metrics = {**API["job"]["metrics"], "processes": 2}
    api = {**API, "job": {"metrics": metrics}}
    text = gpu_check.format_section(_result(api=api, bench=BENCH))
    assert "8 steps with bits=4 on cuda (2 GPUs, DDP), train loss 2.500" in text
    metrics["attention"] = "sdpa: flash-attn is not installed or not usable on this GPU; ..."
    text = gpu_check.format_section(_result(api=api, bench=BENCH))
    assert "on cuda (2 GPUs, DDP), attention sdpa, train loss 2.500" in text


def test_section_gives_the_fsdp_step_its_figures_its_failure_or_why_it_was_skipped():
    metrics = {**API["job"]["metrics"], "processes": 2, "sharding": "fsdp"}
    done = {"job_s": 61.0, "tensors": 120, "job": {"metrics": metrics}}
    text = gpu_check.format_section(_result(api={**API, "fsdp": done}, bench=BENCH))
    assert (
        "**FSDP** (the same job with gpus=2, sharding=fsdp, bits=4, export none): trained on 2 "
        "GPUs with sharding fsdp, train loss 2.500 → 0.750, eval loss 0.800; job 61 s; rank 0 "
        "wrote one adapter of 120 whole tensors, the DDP job's names and shapes." in text
    )
    skipped = {**API, "fsdp": gpu_fsdp_check.skipped(1)}
    text = gpu_check.format_section(_result(api=skipped, bench=BENCH))
    assert "export none): skipped: the host has 1 CUDA GPU; FSDP shards across 2 or more." in text
    assert gpu_fsdp_check.skipped(2) is None
    failed = {**API, "fsdp": {"error": "CheckFailed: fsdp job x failed: NCCL\nTraceback"}}
    text = gpu_check.format_section(_result(api=failed, bench=BENCH))
    assert "export none): **failed**: CheckFailed: fsdp job x failed: NCCL" in text


def test_adapter_shapes_reads_names_and_shapes(tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file(
        {"a.lora_A.weight": torch.zeros(4, 64), "a.lora_B.weight": torch.zeros(64, 4)},
        str(tmp_path / "adapter_model.safetensors"),
    )
    assert gpu_fsdp_check.adapter_shapes(tmp_path) == {
        "a.lora_A.weight": (4, 64),
        "a.lora_B.weight": (64, 4),
    }


def test_section_says_what_failed_and_what_was_skipped():
    text = gpu_check.format_section(
        _result(
            api={"error": "CheckFailed: job abc failed: CUDA out of memory\nTraceback ..."},
            total_s=500.0,
        )
    )
    assert "**failed**: CheckFailed: job abc failed: CUDA out of memory" in text
    assert "Traceback" not in text
    assert "7B-shaped QLoRA benchmark: not run (--skip-bench)." in text
    assert "500 s (**over** the 480 s target)" in text


def test_section_replaces_its_own_and_keeps_the_others(tmp_path):
    report = tmp_path / "benchmarks.md"
    report.write_text(
        "# Benchmarks\n\n## Fine-tuning\n\nCPU rows\n\n## GPU check\n\nold\n\n"
        "## Serving\n\nserving rows\n"
    )
    bench_doc.write_section(
        report, gpu_check.HEADING, gpu_check.format_section(_result(bench=BENCH))
    )
    text = report.read_text()
    assert "old" not in text and "CPU rows" in text and "serving rows" in text
    assert text.index("## Fine-tuning") < text.index("## GPU check") < text.index("## Serving")
    assert text.count("## GPU check") == 1


def test_mfu_is_never_nan_for_an_unknown_gpu():
    bench = {**BENCH, "device": "Some GPU", "peak": gpu_bench.choose_peak("Some GPU", 100.0)}
    text = "\n".join(gpu_bench.lines(bench))
    assert "| 84.0 | 84.0% |" in text
    assert not math.isnan(gpu_bench.mfu(BENCH["ours"], bench["peak"]["tflops"]))


def test_gpu_device_script_refuses_without_a_bundle(tmp_path):
    """The device entry point says what to do when .gpu-bundle was not carried."""
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "gpu_device.sh")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**NO_GPU, "OUT": str(tmp_path / "out"), "GPU_BUNDLE": str(tmp_path / "no-bundle")},
    )
    assert done.returncode == 1
    assert (
        f"no {tmp_path / 'no-bundle'}/MANIFEST.json: run scripts/gpu_bundle.py build "
        "first and carry .gpu-bundle" in done.stderr
    )


def test_preflight_names_each_module_that_does_not_import(monkeypatch):
    monkeypatch.setattr(gpu_check, "MODULES", ["json", "no_such_module_xyz", "csv"])
    assert gpu_check.preflight() == [
        "import no_such_module_xyz: ModuleNotFoundError: No module named 'no_such_module_xyz'"
    ]


def test_section_says_how_each_side_ran():
    baseline = {
        **_side(2000.0, 20480.0),
        "attention": "sdpa",
        "gradient_checkpointing": True,
        "checkpointing_kwargs": None,
        "lm_head_dtype": "bfloat16",
    }
    ours = {
        **baseline,
        "attention": "flash_attention_2",
        "checkpointing_kwargs": {"use_reentrant": False},
    }
    text = "\n".join(gpu_bench.lines({**BENCH, "baseline": baseline, "ours": ours}))
    assert (
        "Set-up: baseline attention sdpa, checkpointing default, LM head in bfloat16; ours "
        "attention flash_attention_2, checkpointing {'use_reentrant': False}, LM head in "
        "bfloat16." in text
    )
    assert "Set-up" not in "\n".join(gpu_bench.lines(BENCH))  # results from before the fields


def test_the_benchmarks_recipe_side_resolves_for_a_gpu_on_the_cpu():
    """What `ours` would train with on an H200, decided without one: 4-bit, paged 8-bit
    AdamW, bf16, non-reentrant checkpointing, flash-attn's varlen kernel where installed."""
    from dataclasses import replace

    from api.finetune import device
    from api.finetune.attention import choose_attention
    from api.finetune.spec import FineTuneSpec
    from tests.utils.devices import H200

    spec = FineTuneSpec(model_name="bench", max_steps=6, batch_size=16, lora_r=16)
    fitted, problems = device.fit(spec, H200)
    assert problems == []
    assert (fitted.bits, fitted.optimizer, fitted.mixed_precision) == (
        4,
        "paged_adamw_8bit",
        "bf16",
    )
    assert fitted.gradient_checkpointing and not fitted.liger_kernel
    assert choose_attention(True, fitted.mixed_precision, None)[0] == "sdpa"
    flash = replace(H200, flash_attn="2.8.3")
    assert (
        choose_attention(True, fitted.mixed_precision, flash.flash_attn)[0] == "flash_attention_2"
    )


GPTQ = {
    "source": "a stand-in",
    "bits": 4,
    "group_size": 64,
    "quantise_s": 21.0,
    "cuda_peak_mb": 900.0,
    "provision_s": 6.0,
    "job_s": 40.0,
    "gpu_peak_mb": 3100.0,
    "generate_s": 0.3,
    "generate": {"response": "Berlin.", "completion_tokens": 3, "done_reason": "stop"},
    "job": {
        "metrics": {
            "steps": 8,
            "mixed_precision": "fp16",
            "device": "cuda",
            "train_loss_first": 2.0,
            "train_loss_last": 1.5,
            "eval_loss": 1.25,
            "export": {"mode": "merged", "files": {"Q4_K_M": "/x.gguf"}},
        }
    },
}


def test_gptq_step_is_skipped_without_cuda_and_touches_nothing(tmp_path):
    work = tmp_path / "gptq"
    said = []
    result = gpu_gptq_check.run(
        work, cuda=False, standin=tmp_path / "none", steps=2, timeout=10, say=said.append
    )
    assert result == {"skipped": "no CUDA"}
    assert said == ["==> GPTQ step skipped: no CUDA"] and not work.exists()


def test_gptq_step_says_why_the_packages_do_not_import(tmp_path, monkeypatch):
    """On CUDA the step first imports the GPTQ packages in a child process; where they are
    missing, or the bundle could not install them, it is not run and says why."""
    empty = tmp_path / "no-gptq"
    empty.mkdir()
    monkeypatch.setenv("LLM_GPTQ_DIR", str(empty))
    reason = gpu_gptq_check.unavailable(cuda=True)
    assert reason.startswith(
        "the GPTQ packages do not import here: the gptqmodel and optimum packages are not "
        f"installed in {empty}"
    )
    (empty / "UNAVAILABLE.txt").write_text("pypcre-0.6.4.tar.gz did not compile here: no cc\n")
    assert gpu_gptq_check.unavailable(cuda=True) == (
        "the GPTQ packages do not import here: pypcre-0.6.4.tar.gz did not compile here: no cc"
    )


def test_gptq_step_inputs_fit_the_api_and_smollm2():
    from api.finetune.spec import FineTuneSpec

    form = gpu_gptq_check.fields(gpu_gptq_check.NAME, 8)
    spec = FineTuneSpec(**form)  # what POST /fine_tune_model validates
    assert (spec.base_model, spec.max_steps, spec.export) == ("gptq-standin", 8, "merged")
    assert spec.mixed_precision == "fp16"  # the GPTQ CUDA kernels' dtype
    rows = gpu_gptq_check.calibration()
    assert len(rows) == 32 and all(len(r.split()) > 5 for r in rows)
    config = json.loads((REPO_ROOT / "shared/models/smollm2-135m/hf/config.json").read_text())
    for width in (config["hidden_size"], config["intermediate_size"]):
        assert width % gpu_gptq_check.GROUP == 0  # GPTQ groups split every layer's inputs


def test_section_gives_the_gptq_figures_or_why_not():
    text = gpu_check.format_section(_result(api=API, gptq=GPTQ, bench=BENCH))
    assert (
        "**GPTQ base through the API** (quantised with GPTQ on the GPU, LoRA trained on the "
        "4-bit weights by gptqmodel's trainable CUDA kernel, merged export, POST /generate): "
        "a stand-in, 4-bit group 64: quantised in 21 s (peak CUDA memory 900 MiB), "
        "provisioned in 6 s; 8 steps in fp16 on cuda, train loss 2.000 → 1.500, eval loss "
        "1.250; job (train, evaluate, export, smoke test) 40 s, GPU memory in use at most "
        "3100 MiB; export merged to Q4_K_M; POST /generate answered 3 tokens in 0.3 s "
        "(stop): 'Berlin.'."
    ) in text
    assert text.index("through the API** (a uvicorn") < text.index("GPTQ base through")
    assert text.index("GPTQ base through") < text.index("| ours: the recipe")
    skipped = gpu_check.format_section(_result(gptq={"skipped": "the GPTQ packages do not"}))
    assert "POST /generate): **not run**: the GPTQ packages do not." in skipped
    failed = gpu_check.format_section(_result(gptq={"error": "CheckFailed: job x\nlog"}))
    assert "POST /generate): **failed**: CheckFailed: job x" in failed
    assert "POST /generate): not run (--skip-gptq)." in gpu_check.format_section(_result())
