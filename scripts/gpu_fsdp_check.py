"""The GPU check's FSDP step (scripts/gpu_api_check.py runs it after the DDP job, on the same
API): `gpus: 2, sharding: fsdp, bits: 4` (FSDP-QLoRA) through POST /fine_tune_model on a host
with two or more GPUs; skipped, with the reason, on a host with fewer.

It checks what a CPU host cannot: the job trains under FSDP on two GPUs to the end, reports
`sharding: fsdp` and 2 processes, and rank 0 writes one ordinary PEFT adapter whose tensors are
whole (gathered from the shards, FULL_STATE_DICT): the same names and shapes as the adapter
the DDP job wrote for the same base and LoRA settings, none of them empty.
"""

from pathlib import Path
from typing import Any

FSDP_TUNED = "gpu-check-fsdp"


def skipped(gpus: int) -> dict[str, Any] | None:
    """Why the step cannot run on a host with `gpus` CUDA devices, or None."""
    if gpus >= 2:
        return None
    return {"skipped": f"the host has {gpus} CUDA GPU; FSDP shards across 2 or more"}


def adapter_shapes(adapter: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape in adapter_model.safetensors."""
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as f:
        return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118


def run(
    client: Any,
    fields: dict[str, str],
    jobs_dir: Path,
    ddp_job_id: str,
    *,
    timeout: float,
    failed: type[Exception],
    say=print,  # type: ignore[no-untyped-def]
) -> dict[str, Any]:
    """Submit the FSDP job with the DDP job's `fields`, follow it, compare the adapters."""
    import time

    from gpu_api_check import follow, training_csv

    form = {
        **fields,
        "model_name": FSDP_TUNED,
        "gpus": "2",
        "sharding": "fsdp",
        "bits": "4",
        "export": "none",
    }
    say("==> POST /fine_tune_model: the same job with gpus=2, sharding=fsdp (FSDP-QLoRA)")
    began = time.monotonic()
    r = client.post(
        "/fine_tune_model",
        data=form,
        files={"train_file": ("train.csv", training_csv(), "text/csv")},
    )
    if r.status_code != 202:
        raise failed(f"POST /fine_tune_model (fsdp) answered {r.status_code}: {r.text}")
    job = follow(client, r.json()["id"], timeout, say)
    result: dict[str, Any] = {"job_s": time.monotonic() - began}
    result["job"] = {k: job.get(k) for k in ("id", "status", "error", "metrics")}
    if job["status"] != "succeeded":
        raise failed(f"fsdp job {job['id']} {job['status']}: {job.get('error')}")
    metrics = job.get("metrics") or {}
    seen = (metrics.get("sharding"), metrics.get("processes"), metrics.get("bits"))
    if seen != ("fsdp", 2, 4):
        raise failed(f"the fsdp job reported sharding/processes/bits {seen}, not (fsdp, 2, 4)")
    ours = adapter_shapes(jobs_dir / job["id"] / "adapter")
    reference = adapter_shapes(jobs_dir / ddp_job_id / "adapter")
    if ours != reference:
        raise failed(
            f"the fsdp adapter's tensors differ from the DDP job's: {sorted(ours.items())[:4]} "
            f"vs {sorted(reference.items())[:4]}"
        )
    empty = [name for name, shape in ours.items() if 0 in shape]
    if empty or not ours:
        raise failed(f"the fsdp adapter has empty tensors: {empty[:4] or 'none at all'}")
    result["tensors"] = len(ours)
    say(f"==> fsdp adapter: {len(ours)} whole tensors, as the DDP job's")
    return result
