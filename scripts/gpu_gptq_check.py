"""The GPU check's GPTQ step (scripts/gpu_check.py runs it after the API step): a GPTQ base on
CUDA through the API, the part of docs/fine-tuning.md's GPTQ table that only a GPU runs.

1. quantise: the API step's base (the provisioned SmolLM2-135M, or the stand-in trained there)
   quantised with GPTQ, 4-bit, group 64 (SmolLM2's 576-wide layers take no group of 128), on
   the GPU in a child process (`python scripts/gpu_gptq_check.py quantise SRC OUT`, which
   calls api/finetune/gptq.py `quantise`), so gptqmodel never enters the check's process;
2. provision it (`provision_from_dir`: its quantization_config kept, llama.cpp's converter
   dequantises it for serving);
3. through the API as a process: LoRA on the 4-bit weights for a few steps (gptqmodel's
   trainable CUDA kernel, `auto_trainable`, in fp16, the kernels' dtype), export merged (the base
   dequantised to fp16 first) with the smoke test, and POST /generate from the tuned
   model; each part timed, the GPU memory in use sampled every second (nvidia-smi).

Skipped, saying why, without CUDA or where the GPTQ packages do not import (`make setup`
installs them; on the device machine the bundle carries them and compiles pypcre there,
scripts/gpu_bundle.py).
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

BITS, GROUP = 4, 64
NAME = "gptq-standin"
TUNED = "gpu-check-gptq-tuned"
# imports the GPTQ path needs, in a child process (gptqmodel sets process-wide state)
# (UNAVAILABLE.txt: why scripts/gpu_bundle.py unpack could not install them)
IMPORTS = (
    "from api.finetune import gptq\n"
    "note = gptq.GPTQ_DIR / 'UNAVAILABLE.txt'\n"
    "if note.is_file():\n"
    "    raise SystemExit(note.read_text().strip())\n"
    "if not gptq.enable():\n"
    "    raise SystemExit(gptq.missing())\n"
    "import gptqmodel, optimum.gptq\n"
)


def unavailable(cuda: bool, python: str = sys.executable) -> str | None:
    """Why the step cannot run on this host, or None."""
    if not cuda:
        return "no CUDA"
    done = subprocess.run(
        [python, "-c", IMPORTS], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
    return f"the GPTQ packages do not import here: {lines[-1]}"


def calibration(count: int = 32) -> list[str]:
    """GPTQ's calibration text: the check's own rows, as the stand-in was trained on them."""
    import bench_finetune

    return [f"{chat[0]['content']} {chat[1]['content']}" for chat in bench_finetune.rows(count)]


def fields(base: str, steps: int) -> dict[str, str]:
    """POST /fine_tune_model's form for the GPTQ base."""
    return {
        "model_name": TUNED,
        "base_model": base,
        "max_steps": str(steps),
        "batch_size": "8",
        "learning_rate": "0.001",
        "checkpoint_steps": "1000",
        "eval_rows": "2",
        "eval_max_new_tokens": "8",
        "system_prompt": "You are a helpful assistant.",
        "mixed_precision": "fp16",  # the GPTQ CUDA kernels compute in fp16 (gptq.load_kwargs)
        "export": "merged",
    }


class GpuMemory:
    """The most GPU memory in use (all processes, MiB) while it runs, from nvidia-smi each
    second; None where nvidia-smi does not answer."""

    def __init__(self) -> None:
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout
                used = max(float(x) for x in out.split())
                self.peak_mb = max(self.peak_mb or 0.0, used)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
            self._stop.wait(1.0)

    def __enter__(self) -> "GpuMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def source_base(
    work: Path, api: dict[str, Any] | None, standin: Path, say=print
) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """(HF checkpoint to quantise, what it is): the API step's base when that step ran, else
    the provisioned SmolLM2 or a stand-in built here (scripts/gpu_api_check.py)."""
    import gpu_api_check

    from api.models.catalog import read_base

    if api and "models_dir" in api and "base" in api:
        models_dir, base, described = Path(api["models_dir"]), api["base"], api["base_described"]
    else:
        from api.config import get_settings

        models_dir, base, described = gpu_api_check.pick_base(
            get_settings().models_dir, standin, work, say
        )
    info = read_base(models_dir / base)
    if info is None or info.hf_path is None:
        raise gpu_api_check.CheckFailed(f"base {base} in {models_dir} has no HF checkpoint")
    return info.hf_path, described


def run(
    work: Path,
    *,
    cuda: bool,
    standin: Path,
    steps: int,
    timeout: float,
    api: dict[str, Any] | None = None,
    say=print,  # type: ignore[no-untyped-def]
) -> dict[str, Any]:
    """Quantise -> provision -> fine-tune -> export -> serve a GPTQ base on CUDA; a dict of what
    was seen, or {"skipped": reason}. Raises CheckFailed when a part fails."""
    if reason := unavailable(cuda):
        say(f"==> GPTQ step skipped: {reason}")
        return {"skipped": reason}
    import httpx
    from gpu_api_check import Api, CheckFailed, follow

    from api.models.provision import provision_from_dir

    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    source, described = source_base(work, api, standin, say)
    result: dict[str, Any] = {"source": described, "bits": BITS, "group_size": GROUP}
    say(f"==> quantising {source.parent.name} with GPTQ ({BITS}-bit, group {GROUP}) on the GPU")
    quantised = work / "gptq-hf"
    done = subprocess.run(
        [sys.executable, __file__, "quantise", str(source), str(quantised)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise CheckFailed(f"GPTQ quantisation failed:\n{done.stderr[-3000:]}")
    result |= json.loads(done.stdout.strip().splitlines()[-1])
    began = time.monotonic()
    provision_from_dir(work / "models", source_dir=quantised, name=NAME, outtype="q8_0", say=say)
    result["provision_s"] = time.monotonic() - began
    say("==> starting the API (uvicorn, loopback) on the GPTQ base")
    server = Api(work / "data", work / "models", work / "api.log")
    result["log"] = str(server.log)
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client, GpuMemory() as memory:
            say(f"==> POST /fine_tune_model: base {NAME} (GPTQ), {steps} steps, export merged")
            began = time.monotonic()
            r = client.post(
                "/fine_tune_model",
                data=fields(NAME, steps),
                files={"train_file": ("train.csv", _training_csv(), "text/csv")},
            )
            if r.status_code != 202:
                raise CheckFailed(f"POST /fine_tune_model answered {r.status_code}: {r.text}")
            job = follow(client, r.json()["id"], timeout, say)
            result["job_s"] = time.monotonic() - began
            result["gpu_peak_mb"] = memory.peak_mb
            result["job"] = {k: job.get(k) for k in ("id", "status", "error", "metrics")}
            if job["status"] != "succeeded":
                raise CheckFailed(f"job {job['id']} {job['status']}: {job.get('error')}")
            if (job.get("metrics") or {}).get("device") != "cuda":
                raise CheckFailed(f"the job trained on {job['metrics'].get('device')}, not cuda")
            began = time.monotonic()
            r = client.post(
                "/generate",
                json={
                    "model": TUNED,
                    "prompt": "What is the capital of Germany?",
                    "options": {"max_tokens": 24, "temperature": 0, "seed": 1},
                },
            )
            result["generate_s"] = time.monotonic() - began
            if r.status_code != 200 or not r.json().get("completion_tokens"):
                raise CheckFailed(f"POST /generate answered {r.status_code}: {r.text}")
            answer = r.json()
            result["generate"] = {
                k: answer.get(k) for k in ("response", "completion_tokens", "done_reason")
            }
            say(f"==> answer ({answer['completion_tokens']} tokens): {answer['response']!r}")
    except CheckFailed as exc:
        raise CheckFailed(f"{exc}\n--- API log (end) ---\n{server.tail()}") from exc
    finally:
        server.stop()
    result["total_s"] = time.monotonic() - started
    return result


def _training_csv() -> bytes:
    import gpu_api_check

    return gpu_api_check.training_csv()


def line(res: dict[str, Any] | None) -> str:
    """The step's paragraph in the `## GPU check` section."""
    head = (
        "**GPTQ base through the API** (quantised with GPTQ on the GPU, LoRA trained on the "
        "4-bit weights by gptqmodel's trainable CUDA kernel, merged export, POST /generate): "
    )
    if res is None:
        return head + "not run (--skip-gptq)."
    if "skipped" in res:
        return head + f"**not run**: {res['skipped']}."
    if "error" in res:
        first = res["error"].strip().splitlines()
        return head + f"**failed**: {first[0][:300] if first else '(no message)'}"
    m = res["job"]["metrics"] or {}
    export = m.get("export", {})
    gen = res["generate"]
    peak = res.get("gpu_peak_mb")
    return head + (
        f"{res['source']}, {res['bits']}-bit group {res['group_size']}: quantised in "
        f"{res['quantise_s']:.0f} s (peak CUDA memory {res['cuda_peak_mb']:.0f} MiB), "
        f"provisioned in {res['provision_s']:.0f} s; {m.get('steps')} steps in "
        f"{m.get('mixed_precision')} on {m.get('device')}, train loss "
        f"{_num(m.get('train_loss_first'))} → {_num(m.get('train_loss_last'))}, eval loss "
        f"{_num(m.get('eval_loss'))}; job (train, evaluate, export, smoke test) "
        f"{res['job_s']:.0f} s, GPU memory in use at most "
        + (f"{peak:.0f} MiB" if peak is not None else "? (no nvidia-smi)")
        + f"; export {export.get('mode', '?')} to {', '.join(export.get('files', {})) or '?'}; "
        f"POST /generate answered {gen['completion_tokens']} tokens in "
        f"{res['generate_s']:.1f} s ({gen['done_reason']}): {gen['response'][:120]!r}."
    )


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "?"


def quantise_main(source: Path, out: Path) -> int:
    """The child: quantise on the GPU, print {"quantise_s", "cuda_peak_mb"} as JSON."""
    import torch

    from api.finetune import gptq

    torch.cuda.reset_peak_memory_stats()
    began = time.monotonic()
    gptq.quantise(source, out, calibration(), bits=BITS, group_size=GROUP, cuda=True)
    print(
        json.dumps(
            {
                "quantise_s": time.monotonic() - began,
                "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20,
            }
        )
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "quantise":
        sys.exit("usage: gpu_gptq_check.py quantise SOURCE_HF OUT_DIR")
    sys.exit(quantise_main(Path(sys.argv[2]), Path(sys.argv[3])))
