"""The host's CPU decides llama.cpp's extra buffer types, and the decision reaches llama.cpp.

Our test machines have no AMX, so the crashing case is shown with a Sapphire Rapids
cpuinfo; what llama.cpp receives is read at `llama_model_load_from_file`, the C call.
"""

import subprocess
import sys

import llama_cpp.llama_cpp as llama_lib
import pytest
from pydantic import ValidationError

from api.config import REPO_ROOT, Settings
from api.serving.base import ServedModel
from api.serving.cpu import choose_extra_buffers, parse_cpuinfo
from api.serving.llama_model import open_llama
from api.serving.llamacpp import LlamaCppServer

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse4_2 avx avx2 fma f16c avx512f avx512bw avx512_vnni avx512_bf16 \
amx_bf16 avx512_fp16 amx_tile amx_int8 arch_lbr
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu
"""
EPYC = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse4_2 avx avx2 fma f16c
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp sve bf16 i8mm
"""


def test_cpuinfo_is_read_from_the_first_processor():
    cpu = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert cpu.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"amx_tile", "amx_int8", "avx512_bf16"} <= cpu.flags
    assert cpu.reported == [
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512_vnni",
        "avx512_bf16",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
    ]
    arm = parse_cpuinfo(GRAVITON)
    assert arm.model == "unknown" and arm.reported == ["asimd", "sve", "bf16", "i8mm"]
    assert parse_cpuinfo("").flags == frozenset()


def test_auto_turns_extra_buffers_off_only_where_llama_cpp_crashes():
    amx = choose_extra_buffers("auto", parse_cpuinfo(SAPPHIRE_RAPIDS))
    assert not amx.enabled
    assert amx.reason.startswith("off: this CPU has amx_int8, amx_tile, and llama.cpp's AMX")
    assert "issue 20824" in amx.reason
    for text in (EPYC, GRAVITON, ""):
        assert choose_extra_buffers("auto", parse_cpuinfo(text)).enabled


def test_the_setting_overrides_the_detection():
    assert choose_extra_buffers("on", parse_cpuinfo(SAPPHIRE_RAPIDS)).enabled
    off = choose_extra_buffers("off", parse_cpuinfo(EPYC))
    assert not off.enabled and off.reason == "forced off by LLM_LLAMACPP_EXTRA_BUFFERS=off"
    assert Settings(llamacpp_extra_buffers="off").llamacpp_extra_buffers == "off"
    with pytest.raises(ValidationError, match="llamacpp_extra_buffers"):
        Settings(llamacpp_extra_buffers="maybe")


@pytest.fixture
def received(monkeypatch) -> list[bool]:
    """`use_extra_bufts` of every model llama.cpp is asked to load during the test."""
    seen: list[bool] = []
    original = llama_lib.llama_model_load_from_file

    def spy(path, params):
        seen.append(bool(params.use_extra_bufts))
        return original(path, params)

    monkeypatch.setattr(llama_lib, "llama_model_load_from_file", spy)
    return seen


@pytest.mark.parametrize(
    ("cpuinfo", "setting", "expected"),
    [
        (SAPPHIRE_RAPIDS, "auto", False),
        (EPYC, "auto", True),
        (EPYC, "off", False),
    ],
)
def test_the_choice_reaches_the_model_params_llama_cpp_loads_with(
    settings, received, cpuinfo, setting, expected
):
    settings.llamacpp_extra_buffers = setting
    server = LlamaCppServer(settings, cpu=parse_cpuinfo(cpuinfo))
    base = settings.models_dir / "smollm2-135m"
    model = ServedModel(name="smollm2-135m", gguf_path=base / "model.gguf")
    reply = "".join(
        c.text
        for c in server.chat(
            model, [{"role": "user", "content": "Say hi"}], {"max_tokens": 4, "seed": 1}
        )
    )
    server.close()
    assert received == [expected]
    assert reply  # a multi-token prompt answered either way
    assert server.health()["extra_buffers"]["enabled"] is expected


def test_defaults_are_restored_after_a_load(settings, received):
    llm = open_llama(
        settings.models_dir / "smollm2-135m" / "model.gguf",
        extra_buffers=choose_extra_buffers("off", parse_cpuinfo(EPYC)),
        n_ctx=64,
        verbose=False,
    )
    assert llm.model_params.use_extra_bufts is False
    llm.close()
    assert llama_lib.llama_model_default_params().use_extra_bufts is True
    assert received == [False]


def test_health_reports_the_cpu_and_the_choice(make_client):
    health = make_client(llamacpp_extra_buffers="off").get("/health").json()
    assert health["server"]["extra_buffers"] == {
        "enabled": False,
        "setting": "off",
        "reason": "forced off by LLM_LLAMACPP_EXTRA_BUFFERS=off",
    }
    assert health["cpu"]["model"] and isinstance(health["cpu"]["features"], list)


def test_the_benchmark_measures_both_sides(tmp_path, base_models_dir):
    out = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "bench_extra_buffers.py"),
            "--quick",
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    section = out.read_text().split("## llama.cpp extra buffer types")[1]
    assert "| Q4_1 (provisioned) |" in section
    assert "load average" in section


def test_every_model_load_goes_through_open_llama():
    """A `Llama(...)` elsewhere would skip the extra-buffer choice and crash AMX hosts."""
    ours = REPO_ROOT / "api" / "serving" / "llama_model.py"
    offenders = [
        str(p.relative_to(REPO_ROOT))
        for folder in ("api", "scripts", "tests")
        for p in (REPO_ROOT / folder).rglob("*.py")
        if p != ours and p.name != "test_cpu.py" and "Llama(" in p.read_text()
    ]
    assert offenders == []
