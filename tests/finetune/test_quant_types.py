"""Every offered GGUF type is one of llama.cpp's and its quantiser writes it (tiny model)."""

import pytest

from api.finetune.export import ExportError, quantize
from api.finetune.quant_types import QUANTIZATIONS, file_type
from tests.utils.gguf_header import gguf_value
from tests.utils.jobs import _no_jobs, submit
from tests.utils.tiny_model import TINY


def gguf_file_type(path) -> int:
    """`general.file_type` of a GGUF, read from its header (tests/utils/gguf_header.py)."""
    return int(gguf_value(path, "general.file_type"))


def test_every_type_is_a_llama_cpp_file_type_and_is_written(tiny_models_dir, tmp_path):
    source = tiny_models_dir / TINY / "model.gguf"  # f32: the quantiser takes it like F16
    assert len(QUANTIZATIONS) == 16
    for kind in QUANTIZATIONS:
        target = tmp_path / f"model-{kind}.gguf"
        quantize(source, target, kind)
        assert gguf_file_type(target) == file_type(kind), kind
        target.unlink()


def test_a_file_llama_quantize_cannot_read_is_an_export_error_with_its_output(tmp_path):
    source = tmp_path / "broken.gguf"
    source.write_bytes(b"GGUF" + b"\0" * 60)
    target = tmp_path / "out.gguf"
    with pytest.raises(ExportError) as caught:
        quantize(source, target, "Q4_0")
    message = str(caught.value)
    assert message.startswith("llama-quantize could not quantise to Q4_0 (exited with status")
    assert "broken.gguf" in message and str(tmp_path) not in message  # its log, paths scrubbed
    assert not target.exists()


def test_a_missing_llama_quantize_says_to_run_setup(tmp_path):
    with pytest.raises(ExportError, match=r"llama-quantize is missing: run `make setup`"):
        quantize(
            tmp_path / "a.gguf", tmp_path / "b.gguf", "Q4_0", binary=tmp_path / "llama-quantize"
        )


@pytest.fixture
def jobs_client(make_client, tiny_models_dir):
    return make_client(base_models_dir=tiny_models_dir)


def test_unknown_type_is_a_422_that_lists_the_allowed_ones(jobs_client):
    r = submit(jobs_client, export="merged", quantization="IQ2_XS")
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert error.startswith("quantization")
    assert "'Q4_0'" in error and "'BF16'" in error
    _no_jobs(jobs_client)
    r = jobs_client.post("/jobs/ftjob-x/export", json={"quantization": ["Q2_K_S"]})
    assert r.status_code == 422
