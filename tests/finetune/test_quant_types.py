"""Every offered GGUF type is one of llama.cpp's and its quantiser writes it (tiny model)."""

import pytest

from api.finetune.export import quantize
from api.finetune.quant_types import QUANTIZATIONS, ftype_constant
from tests.utils.jobs import _no_jobs, submit
from tests.utils.tiny_model import TINY


def gguf_metadata(path) -> dict[str, str]:
    """A GGUF's metadata through llama.cpp (vocabulary only: gguf's reader takes seconds
    per file on a 49k-token vocabulary)."""
    from api.serving.llama_model import open_llama

    return open_llama(path, vocab_only=True, verbose=False).metadata


def test_every_type_is_a_llama_cpp_file_type_and_is_written(tiny_models_dir, tmp_path):
    import llama_cpp

    source = tiny_models_dir / TINY / "model.gguf"  # f32: the quantiser takes it like F16
    assert len(QUANTIZATIONS) == 16
    for kind in QUANTIZATIONS:
        target = tmp_path / f"model-{kind}.gguf"
        quantize(source, target, kind)
        file_type = int(gguf_metadata(target)["general.file_type"])
        assert file_type == getattr(llama_cpp, ftype_constant(kind)), kind
        target.unlink()


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
