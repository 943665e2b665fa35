"""How many training processes one job may ask for (`gpus` in the fine-tune spec).

Local: the CUDA devices the training-device probe saw (api/finetune/device.py; the API
process does not import torch), or, on a host without a GPU, one CPU process (gloo) per
core. An executor that spreads jobs over a cluster answers here for the cluster instead.
"""

import os
from dataclasses import dataclass

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


def training_capacity(settings: Settings, device: TrainingDevice | None = None) -> Capacity:
    """What one job can get. `settings` chooses where jobs run (this host today)."""
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
