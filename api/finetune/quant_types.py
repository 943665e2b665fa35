"""The GGUF types an export can write: every type llama.cpp's quantiser offers without an
importance matrix. Each name is llama.cpp's: `llama-quantize` takes it as its type argument,
and it is the GGUF file type `LlamaFileType.MOSTLY_<NAME>` of llama.cpp's gguf package
(tests/finetune/test_quant_types.py checks that every name has one and that the quantiser
writes it).

Left out on purpose: the IQ* types and Q2_K_S, which llama.cpp's quantiser refuses (or
degrades badly) without an importance matrix; TQ1_0/TQ2_0 (ternary, for BitNet-trained
weights only); MXFP4_MOE and NVFP4 (mixture-of-experts and Blackwell formats); Q1_0/Q2_0.
"""

from typing import Literal, get_args

Quantization = Literal[
    "Q4_0",
    "Q4_1",
    "Q5_0",
    "Q5_1",
    "Q2_K",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q4_K_S",
    "Q4_K_M",
    "Q5_K_S",
    "Q5_K_M",
    "Q6_K",
    "Q8_0",
    "F16",
    "BF16",
]
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
# F16 is what the converter writes; every other type is quantised from it.
CONVERTED = "F16"


def file_type(kind: str) -> int:
    """The GGUF `general.file_type` that a file quantised to `kind` has."""
    from gguf import LlamaFileType

    return int(LlamaFileType[f"MOSTLY_{kind}"])
