"""Training devices as the probe would report them: a CPU host, an H200, and two broken CUDA
set-ups (no bitsandbytes; a driver too old for the CUDA build)."""

from api.finetune.device import TrainingDevice

CPU = TrainingDevice(cuda=False, torch="2.13.0+cpu", bitsandbytes="0.50.2")
H200 = TrainingDevice(
    cuda=True,
    gpus=("NVIDIA H200",),
    torch="2.13.0+cu130",
    torch_cuda="13.0",
    bitsandbytes="0.50.2",
    bf16=True,
)
T4 = TrainingDevice(  # a GPU without bf16: mixed_precision auto is fp16
    cuda=True,
    gpus=("Tesla T4",),
    torch="2.13.0+cu130",
    torch_cuda="13.0",
    bitsandbytes="0.50.2",
    bf16=False,
)
CUDA_NO_BNB = TrainingDevice(
    cuda=True,
    gpus=("NVIDIA H200",),
    torch="2.13.0+cu130",
    torch_cuda="13.0",
    notes=("bitsandbytes cannot be imported: ModuleNotFoundError: No module named 'bitsandbytes'",),
)
OLD_DRIVER = TrainingDevice(
    cuda=False,
    torch="2.13.0+cu130",
    torch_cuda="13.0",
    bitsandbytes="0.50.2",
    notes=(
        "CUDA initialization: The NVIDIA driver on your system is too old (found version 12040).",
    ),
)
