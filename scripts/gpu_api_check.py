"""The GPU check's first half: the API as a process fine-tunes a base with bits=4, exports and
serves it, through the same HTTP calls a user makes (scripts/gpu_check.py runs it).

The base is the provisioned SmolLM2-135M when shared/models has it. The device machine we check
on cannot receive it (the GGUF alone is 93 MB; 64 MiB travel), so there a stand-in is built:
SmolLM2-135M's architecture, tokenizer and chat template (carried in .gpu-bundle/), trained
from random weights on the GPU on the check's own rows until it answers in their format and
ends its turn (the export's smoke test refuses a model that never stops), then provisioned
through `provision_from_dir`, so llama.cpp's converter runs there too. It knows nothing else;
what is checked is that every step runs on the GPU and succeeds.
"""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROVISIONED = "smollm2-135m"
STANDIN = "smollm2-standin"
TUNED = "gpu-check-tuned"
TERMINAL = ("succeeded", "failed", "cancelled")


class CheckFailed(Exception):
    """A step of the check failed; the message says which and why."""


def pick_base(
    models_dir: Path, standin_files: Path, work: Path, say=print
) -> tuple[Path, str, str]:  # type: ignore[no-untyped-def]
    """(models dir, base name, description): the provisioned SmolLM2, else the stand-in."""
    from api.models.catalog import read_base

    if read_base(models_dir / PROVISIONED) is not None:
        return models_dir, PROVISIONED, "SmolLM2-135M-Instruct (provisioned)"
    if not (standin_files / "config.json").is_file():
        raise CheckFailed(
            f"no provisioned {PROVISIONED} in {models_dir} and no stand-in files in "
            f"{standin_files}: run `make model` or scripts/gpu_bundle.py first"
        )
    say(
        f"==> {PROVISIONED} is not provisioned here: building the stand-in (its architecture "
        "and tokenizer, random weights)"
    )
    return (
        work / "models",
        build_standin(standin_files, work, say),
        (
            "a SmolLM2-135M stand-in: its config, tokenizer and chat template, weights trained from "
            "random on the GPU for a few seconds on the check's rows"
        ),
    )


def build_standin(files: Path, work: Path, say=print) -> str:  # type: ignore[no-untyped-def]
    """SmolLM2-135M's config and tokenizer, trained from random weights on the GPU until it
    answers the check's questions in their format and ends its turn (the export's smoke test
    needs a model that stops), then provisioned like any local checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from api.models.provision import provision_from_dir

    hf = work / "standin-hf"
    shutil.copytree(files, hf, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        AutoConfig.from_pretrained(hf), dtype=torch.float32
    ).to("cuda")
    tokenizer = AutoTokenizer.from_pretrained(hf)
    pretrain(model, tokenizer, say)
    model.to("cpu").save_pretrained(hf, safe_serialization=True)
    del model
    torch.cuda.empty_cache()
    provision_from_dir(work / "models", source_dir=hf, name=STANDIN, outtype="q8_0", say=say)
    return STANDIN


def pretrain(
    model: Any,
    tokenizer: Any,
    say=print,
    max_steps: int = 400,  # type: ignore[no-untyped-def]
    device: str = "cuda",
) -> int:
    """Full training on the check's rows (every token) until greedy answers to two of their
    questions end with the end-of-turn token; the steps it took."""
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_finetune

    system = {"role": "system", "content": bench_finetune.SYSTEM}
    chats = bench_finetune.rows(64)
    texts = [tokenizer.apply_chat_template([system, *chat], tokenize=False) for chat in chats]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(texts, return_tensors="pt", padding=True).to(device)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    for step in range(1, max_steps + 1):
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * min(1.0, step / 20)
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0:
            stops = [
                _stops(model, tokenizer, [system, chat[0]], device) for chat in (chats[1], chats[6])
            ]
            say(
                f"==> stand-in training step {step}: loss {float(loss):.3f}, "
                f"{sum(stops)}/2 greedy answers end their turn"
            )
            if all(stops):
                return step
    raise CheckFailed(f"the stand-in did not learn to end its answers in {max_steps} steps")


def _stops(model: Any, tokenizer: Any, messages: list[dict[str, str]], device: str) -> bool:
    import torch

    model.eval()
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    ).to(device)
    with torch.no_grad():
        out = model.generate(
            **ids, max_new_tokens=200, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return tokenizer.eos_token_id in out[0, ids["input_ids"].shape[1] :].tolist()


def training_csv(count: int = 48) -> bytes:
    """Question/answer rows with one fixed sign-off: a behaviour a tuned model can show."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_finetune

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["input", "output"])
    for chat in bench_finetune.rows(count):
        writer.writerow([chat[0]["content"], chat[1]["content"]])
    return out.getvalue().encode()


class Api:
    """uvicorn running `api.main:app` on a loopback port, in its own process group."""

    def __init__(self, data_dir: Path, models_dir: Path, log: Path):
        sys.path.insert(0, str(ROOT / "scripts"))
        import bench

        self.port = bench.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            **os.environ,
            "LLM_DATA_DIR": str(data_dir),
            "LLM_BASE_MODELS_DIR": str(models_dir),
            "LLM_JOB_POLL_SECONDS": "0.2",
            "HF_HUB_OFFLINE": "1",
            "LLM_THREADS": str(min(8, os.cpu_count() or 1)),
        }
        env.pop("LLM_API_KEY", None)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "api.main:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            import httpx

            with httpx.Client(timeout=10) as client:
                bench._wait_healthy(client, self.url, self.proc)
        except RuntimeError as exc:
            self.stop()
            raise CheckFailed(f"{exc}:\n{self.tail()}") from exc

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a training child left behind
        except (ProcessLookupError, PermissionError):
            pass


def follow(client: Any, job_id: str, timeout: float, say=print) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Poll the job and print each new event until it ends; the final job body."""
    deadline, after = time.monotonic() + timeout, 0
    while True:
        body = client.get(f"/jobs/{job_id}/events", params={"after": after, "follow": False}).text
        for line in body.splitlines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                after = event["seq"]
                say(f"==> job {event['type']}: {event['message']}")
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise CheckFailed(f"job {job_id} still {job['status']} after {timeout:.0f} s")
        time.sleep(1.0)


def fsdp_step(  # type: ignore[no-untyped-def]
    client: Any, fields: dict[str, str], work: Path, ddp_job: str, timeout: float, say=print
) -> dict[str, Any]:
    """The FSDP job (scripts/gpu_fsdp_check.py) where there are two GPUs; its failure is
    recorded in the result, not raised, so the rest of the check still reports."""
    import gpu_fsdp_check
    import torch

    why_not = gpu_fsdp_check.skipped(torch.cuda.device_count())
    if why_not:
        say(f"==> FSDP step skipped: {why_not['skipped']}")
        return why_not
    try:
        return gpu_fsdp_check.run(
            client,
            fields,
            work / "data" / "jobs",
            ddp_job,
            timeout=timeout,
            failed=CheckFailed,
            say=say,
        )
    except CheckFailed as exc:
        say(f"==> FAILED FSDP step: {exc}")
        return {"error": f"CheckFailed: {exc}"}


def run(
    work: Path, *, standin_files: Path, steps: int, timeout: float, say=print
) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Fine-tune (bits=4) -> export -> serve through the API; a dict of what was seen."""
    import httpx
    import torch

    from api.config import get_settings

    started = time.monotonic()
    gpus = 2 if torch.cuda.device_count() >= 2 else 1  # `gpus: 2` (DDP) where there are two
    models_dir, base, described = pick_base(get_settings().models_dir, standin_files, work, say)
    result: dict[str, Any] = {
        "models_dir": str(models_dir),  # the GPTQ step quantises this base
        "base": base,
        "base_described": described,
        "provision_s": time.monotonic() - started,
        "steps": steps,
    }
    say("==> starting the API (uvicorn, loopback)")
    api = Api(work / "data", models_dir, work / "api.log")
    result["log"] = str(api.log)
    try:
        with httpx.Client(base_url=api.url, timeout=120) as client:
            fields = {
                "model_name": TUNED,
                "base_model": base,
                "bits": "4",
                "max_steps": str(steps),
                "batch_size": "8",
                "learning_rate": "0.001",
                "checkpoint_steps": "1000",
                "eval_rows": "2",
                "eval_max_new_tokens": "8",
                "system_prompt": "You are a helpful assistant.",
                "export": "merged",
                "gpus": str(gpus),
            }
            say(
                f"==> POST /fine_tune_model: base {base}, bits=4, gpus={gpus}, {steps} steps, "
                "export merged"
            )
            began = time.monotonic()
            r = client.post(
                "/fine_tune_model",
                data=fields,
                files={"train_file": ("train.csv", training_csv(), "text/csv")},
            )
            if r.status_code != 202:
                raise CheckFailed(f"POST /fine_tune_model answered {r.status_code}: {r.text}")
            job = follow(client, r.json()["id"], timeout, say)
            result["job_s"] = time.monotonic() - began
            result["job"] = {k: job.get(k) for k in ("id", "status", "error", "metrics")}
            if job["status"] != "succeeded":
                raise CheckFailed(f"job {job['id']} {job['status']}: {job.get('error')}")
            metrics = job.get("metrics") or {}
            if metrics.get("bits") != 4 or metrics.get("device") != "cuda":
                raise CheckFailed(
                    f"the job trained with bits={metrics.get('bits')} on "
                    f"{metrics.get('device')}, not bits=4 on cuda"
                )
            if metrics.get("processes") != gpus:
                raise CheckFailed(
                    f"the job trained on {metrics.get('processes')} process(es), not gpus={gpus}"
                )
            say(f"==> POST /generate from {TUNED}")
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
            if r.status_code != 200:
                raise CheckFailed(f"POST /generate answered {r.status_code}: {r.text}")
            answer = r.json()
            result["generate"] = {
                k: answer.get(k) for k in ("response", "completion_tokens", "done_reason")
            }
            if not answer.get("completion_tokens"):
                raise CheckFailed(f"POST /generate returned no tokens: {answer}")
            say(f"==> answer ({answer['completion_tokens']} tokens): {answer['response']!r}")
            result["fsdp"] = fsdp_step(client, fields, work, result["job"]["id"], timeout, say)
    except CheckFailed as exc:
        raise CheckFailed(f"{exc}\n--- API log (end) ---\n{api.tail()}") from exc
    finally:
        api.stop()
    result["total_s"] = time.monotonic() - started
    return result
