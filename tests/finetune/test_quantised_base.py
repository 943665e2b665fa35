"""A GPTQ base (config.json carries its quantization_config): refused before any work, with
the reason, where it cannot be trained (no CUDA, no gptqmodel); other quantised bases too."""

import json
import shutil

from api.finetune.quantised_base import quantisation, quantised_base_problem
from tests.utils.devices import CPU, H200
from tests.utils.jobs import _no_jobs, submit
from tests.utils.tiny_model import TINY

GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}


def _quantised_copy(source, target, config):
    shutil.copytree(source, target)
    path = target / "hf" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "quantization_config": config}))
    return target / "hf"


def test_quantised_bases_are_recognised_with_the_reason(tiny_models_dir, tmp_path):
    plain = tiny_models_dir / TINY / "hf"
    assert quantisation(plain) is None and quantised_base_problem("x", plain, CPU) is None
    gptq = _quantised_copy(tiny_models_dir / TINY, tmp_path / "gptq", GPTQ)
    assert quantisation(gptq) == GPTQ
    assert quantised_base_problem("g", gptq, CPU).startswith(
        "Base model 'g' is a GPTQ-quantised checkpoint (4-bit): LoRA on GPTQ weights needs a "
        "CUDA GPU (GPTQ kernels); this host has none: torch.cuda.is_available() is False"
    )
    # on a GPU host the gptqmodel package is what transformers' GPTQ integration needs
    assert "needs the gptqmodel package" in quantised_base_problem("g", gptq, H200)
    awq = _quantised_copy(tiny_models_dir / TINY, tmp_path / "awq", {"quant_method": "awq"})
    assert "only GPTQ checkpoints can be fine-tuned" in quantised_base_problem("a", awq, H200)


def test_a_gptq_base_without_cuda_is_a_422_and_leaves_nothing(
    make_client, tiny_models_dir, tmp_path
):
    models = tmp_path / "models"
    models.mkdir()
    _quantised_copy(tiny_models_dir / TINY, models / "tiny-gptq", GPTQ)
    client = make_client(base_models_dir=models)
    r = submit(client, base_model="tiny-gptq")
    assert r.status_code == 422
    assert "'tiny-gptq' is a GPTQ-quantised checkpoint (4-bit)" in r.json()["detail"]
    _no_jobs(client)
