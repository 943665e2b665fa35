"""What this host's CPU has, and whether llama.cpp may use its extra buffer types here.

llama.cpp's CPU backend offers "extra buffer types": weights repacked at load time for
faster kernels (the AVX2/AVX-512/NEON repack of Q4_0/IQ4_NL/Q4_K, and on CPUs with AMX the
AMX tile buffer). On CPUs with AMX (Intel Sapphire Rapids and later: the common cloud
Xeon) the AMX buffer's matmul, `ggml_backend_amx_mul_mat`, segfaults on any multi-token
prompt (llama.cpp issue 20824, closed without a fix; Ollama's runner crashes the same way).
A native crash kills the whole API process, so the choice is made from the host the
service runs on, never from the machine the code was tested on: with `auto`, extra
buffers are off where a crashing feature is present and on everywhere else.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

ExtraBuffers = Literal["auto", "on", "off"]

# CPU flags (as /proc/cpuinfo spells them) under which llama.cpp is known to crash with
# extra buffer types on, and why. Add a feature here when another one is found.
CRASHING_FEATURES: dict[str, str] = {
    "amx_tile": "llama.cpp's AMX extra buffer type segfaults on multi-token prompts "
    "(ggml_backend_amx_mul_mat, llama.cpp issue 20824)",
    "amx_int8": "llama.cpp's AMX extra buffer type segfaults on multi-token prompts "
    "(ggml_backend_amx_mul_mat, llama.cpp issue 20824)",
}

# Flags worth reporting: what llama.cpp's CPU kernels and bf16 training depend on.
REPORTED_FEATURES = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "sve",
    "bf16",
    "i8mm",
)


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]

    @property
    def reported(self) -> list[str]:
        return [f for f in REPORTED_FEATURES if f in self.flags]


@dataclass(frozen=True)
class ExtraBuffersChoice:
    enabled: bool
    setting: ExtraBuffers
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"enabled": self.enabled, "setting": self.setting, "reason": self.reason}


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor's model name and flags (`flags` on x86, `Features` on Arm)."""
    model, flags = "unknown", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and model == "unknown":
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model=model, flags=flags)


@lru_cache
def host_cpu(path: str = "/proc/cpuinfo") -> CpuInfo:
    try:
        return parse_cpuinfo(Path(path).read_text(errors="replace"))
    except OSError:
        return CpuInfo(model="unknown", flags=frozenset())


def choose_extra_buffers(setting: ExtraBuffers, cpu: CpuInfo) -> ExtraBuffersChoice:
    """Whether llama.cpp may load weights into extra buffer types on this CPU."""
    if setting == "on":
        return ExtraBuffersChoice(True, setting, "forced on by LLM_LLAMACPP_EXTRA_BUFFERS=on")
    if setting == "off":
        return ExtraBuffersChoice(False, setting, "forced off by LLM_LLAMACPP_EXTRA_BUFFERS=off")
    crashing = sorted(f for f in CRASHING_FEATURES if f in cpu.flags)
    if crashing:
        return ExtraBuffersChoice(
            False,
            setting,
            f"off: this CPU has {', '.join(crashing)}, and {CRASHING_FEATURES[crashing[0]]}",
        )
    return ExtraBuffersChoice(True, setting, "on: no CPU feature llama.cpp is known to crash on")
