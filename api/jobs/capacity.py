"""Where a job will train and how many training processes it may ask for (`gpus`).

Local: the CUDA devices the training-device probe saw (api/finetune/device.py; the API
process does not import torch), or, on a host without a GPU, one CPU process (gloo) per
core. With LLM_JOB_EXECUTOR=ray the steps run on the Ray cluster's nodes, not on the API's
host (which in the cluster profile has no GPU): the device and the capacity are then the
cluster's, read from Ray's node table (GPUs per node, their accelerator type); the torch
and bitsandbytes versions are this host's, since every node runs the same image.
"""

import os
import sys
from dataclasses import dataclass, replace
from typing import Any

from api.config import Settings
from api.finetune.device import TrainingDevice, training_device


@dataclass(frozen=True)
class Capacity:
    processes: int  # the most training processes one job can have
    cuda: bool  # GPUs (one process each, NCCL) or CPU processes (gloo)
    where: str  # what offers them, for messages: "this host's 2 CUDA GPUs (...)"

    @property
    def unit(self) -> str:
        return "GPU" if self.cuda else "CPU process"


def cpu_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def local_capacity(device: TrainingDevice) -> Capacity:
    if device.cuda:
        count = len(device.gpus)
        names = ", ".join(device.gpus)
        return Capacity(count, True, f"this host has {count} CUDA GPU(s) ({names})")
    cores = cpu_cores()
    return Capacity(
        cores,
        False,
        f"this host has no CUDA GPU, so a job trains on CPU processes (gloo), at most one "
        f"per core: {cores} core(s)",
    )


def _ray_nodes(settings: Settings) -> list[dict[str, float]] | None:
    """The resources of each live node of the Ray cluster the runner opened, or None when
    jobs run locally (or Ray is not connected in this process: the runner connects at
    start-up)."""
    if settings.job_executor != "ray":
        return None
    ray: Any = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


def _accelerator(node: dict[str, float]) -> str:
    types = [k.split(":", 1)[1] for k in node if k.startswith("accelerator_type:")]
    return types[0] if types else "GPU"


def cluster_device(nodes: list[dict[str, float]], here: TrainingDevice) -> TrainingDevice:
    """The training device a job gets on a Ray cluster with these nodes."""
    gpus = tuple(_accelerator(node) for node in nodes for _ in range(int(node.get("GPU", 0))))
    where = f"the Ray cluster: {len(nodes)} node(s), {len(gpus)} GPU(s)"
    if not gpus:
        return replace(here, cuda=False, gpus=(), notes=(where,))
    return replace(here, cuda=True, gpus=gpus, bf16=None, cpu_bf16_speedup=None, notes=(where,))


def job_device(settings: Settings) -> TrainingDevice:
    """The device a job will train on: this host's, or the Ray cluster's."""
    here = training_device()
    nodes = _ray_nodes(settings)
    return here if nodes is None else cluster_device(nodes, here)


def cluster_capacity(nodes: list[dict[str, float]]) -> Capacity:
    """One job's processes run on one node: the node with the most GPUs (or CPUs)."""
    most_gpus = max((int(n.get("GPU", 0)) for n in nodes), default=0)
    if most_gpus:
        return Capacity(most_gpus, True, f"the Ray cluster's largest node has {most_gpus} GPU(s)")
    most_cpus = max((int(n.get("CPU", 0)) for n in nodes), default=0)
    return Capacity(
        most_cpus,
        False,
        f"the Ray cluster has no GPU, so a job trains on CPU processes (gloo) on one node, "
        f"at most one per CPU: {most_cpus} on its largest node",
    )


def training_capacity(settings: Settings, device: TrainingDevice | None = None) -> Capacity:
    """What one job can get, where `settings` says jobs run."""
    nodes = _ray_nodes(settings)
    if nodes is not None:
        return cluster_capacity(nodes)
    return local_capacity(device or training_device())


def gpu_capacity(settings: Settings, device: TrainingDevice | None = None) -> int:
    """The largest `gpus` a job may ask for."""
    return training_capacity(settings, device).processes


def gpus_problem(gpus: int, capacity: Capacity) -> str | None:
    """Why `gpus` cannot be granted, or None."""
    if gpus <= capacity.processes:
        return None
    return (
        f"gpus: {gpus} training processes asked for, but {capacity.where}; ask for at most "
        f"{capacity.processes}."
    )
