"""`mixed_precision`: the dtype training computes in, decided from the device.

`auto` is bf16 on a GPU that has it (Ampere and later), fp16 with a loss scaler on one that
does not (T4, V100: the Trainer's `fp16=True` scales the loss so small fp16 gradients do not
underflow), and fp32 on the CPU. On the CPU bf16 may be chosen (autocast: fast on CPUs with
AMX or AVX512-BF16, slower than fp32 on others); fp16 is refused there. `auto` on the CPU picks bf16
only where the probe measured bf16 matmuls at least BF16_MIN_SPEEDUP times faster than fp32
(api/finetune/cpu_speed.py): the frozen base is then loaded in bf16 and the step autocast.
"""

from typing import Any

BF16_MIN_SPEEDUP = 1.3


def resolve_precision(choice: str, device: Any) -> tuple[str, list[str]]:
    """(the resolved precision, every reason this device cannot use the choice)."""
    if choice == "auto":
        if device.cuda:
            return ("bf16" if device.bf16 is not False else "fp16"), []
        speedup = getattr(device, "cpu_bf16_speedup", None)
        return ("bf16" if speedup is not None and speedup >= BF16_MIN_SPEEDUP else "fp32"), []
    if choice == "fp16" and not device.cuda:
        return choice, [
            "mixed_precision: fp16 needs a CUDA GPU (fp16 autocast with a loss scaler); this "
            f"host has none: {device.cuda_state()}. Use fp32, bf16 or auto on the CPU."
        ]
    if choice == "bf16" and device.cuda and device.bf16 is False:
        return choice, [
            f"mixed_precision: bf16 is not supported by this GPU ({', '.join(device.gpus)}); "
            "use fp16 (with loss scaling) or auto."
        ]
    return choice, []


def precision_reason(choice: str, resolved: str, device: Any) -> str:
    """Why the job computes in `resolved`, for the job's summary and metrics."""
    if choice != "auto":
        return f"{resolved}: chosen in the request"
    if device.cuda:
        gpus = ", ".join(device.gpus) or "the GPU"
        if resolved == "bf16":
            return f"bf16: auto on {gpus}, which has bf16"
        return f"fp16 with loss scaling: auto on {gpus}, which has no bf16"
    speedup = getattr(device, "cpu_bf16_speedup", None)
    if speedup is None:
        return "fp32: auto on the CPU, bf16 matmul speed not measured"
    faster = "faster" if resolved == "bf16" else f"under the {BF16_MIN_SPEEDUP}x needed"
    return f"{resolved}: auto on the CPU, bf16 matmuls measured {speedup}x fp32 ({faster})"


def torch_dtype_name(precision: str) -> str:
    """The dtype the base weights are loaded in on CUDA for `precision`."""
    return {"bf16": "bfloat16", "fp16": "float16"}.get(precision, "float32")
