"""A GPTQ base (config.json carries its quantization_config): refused before any work, with
the reason, where it cannot be trained or evaluated (gptqmodel/optimum not installed); other
quantised bases always. Training and evaluating one for real: test_gptq_base.py."""

import json
import shutil

from api.finetune import gptq as gptq_support
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


def test_quantised_bases_are_recognised_with_the_reason(tiny_models_dir, tmp_path, monkeypatch):
    plain = tiny_models_dir / TINY / "hf"
    assert quantisation(plain) is None and quantised_base_problem("x", plain, CPU) is None
    gptq = _quantised_copy(tiny_models_dir / TINY, tmp_path / "gptq", GPTQ)
    assert quantisation(gptq) == GPTQ
    # gptqmodel's torch kernel trains on the CPU, its GPU kernels on CUDA
    assert quantised_base_problem("g", gptq, CPU) is None
    assert quantised_base_problem("g", gptq, H200) is None
    # the torch kernel fails under the CPU's bf16 autocast: refused before any work
    assert quantised_base_problem("g", gptq, CPU, "bf16").endswith(
        "on the CPU its layers (gptqmodel's torch kernel) compute in fp32 only, and "
        "mixed_precision resolved to bf16. Set mixed_precision: fp32."
    )
    monkeypatch.setattr(gptq_support, "GPTQ_DIR", tmp_path / "no-gptq")
    assert quantised_base_problem("g", gptq, CPU) == (
        "Base model 'g' is a GPTQ-quantised checkpoint (4-bit): LoRA on GPTQ weights goes "
        "through transformers' GPTQ integration, and the gptqmodel and optimum packages are "
        f"not installed in {tmp_path / 'no-gptq'} (`make setup` installs them from "
        "requirements-gptq.txt). Run `make setup`, or provision the 16-bit checkpoint instead."
    )
    awq = _quantised_copy(tiny_models_dir / TINY, tmp_path / "awq", {"quant_method": "awq"})
    assert "only GPTQ checkpoints can be fine-tuned" in quantised_base_problem("a", awq, H200)


def test_a_gptq_base_without_gptqmodel_is_a_422_and_leaves_nothing(
    make_client, tiny_models_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(gptq_support, "GPTQ_DIR", tmp_path / "no-gptq")
    models = tmp_path / "models"
    models.mkdir()
    _quantised_copy(tiny_models_dir / TINY, models / "tiny-gptq", GPTQ)
    client = make_client(base_models_dir=models)
    r = submit(client, base_model="tiny-gptq")
    assert r.status_code == 422
    assert "'tiny-gptq' is a GPTQ-quantised checkpoint (4-bit)" in r.json()["detail"]
    assert "gptqmodel and optimum packages are not installed" in r.json()["detail"]
    _no_jobs(client)


def test_evaluating_a_gptq_base_without_gptqmodel_is_a_422_and_leaves_nothing(
    make_client, tiny_models_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(gptq_support, "GPTQ_DIR", tmp_path / "no-gptq")
    models = tmp_path / "models"
    models.mkdir()
    _quantised_copy(tiny_models_dir / TINY, models / "tiny-gptq", GPTQ)
    shutil.copytree(tiny_models_dir / TINY, models / TINY)
    client = make_client(base_models_dir=models)
    test_file = {"test_file": ("t.csv", b"input,output\nHi?,Hello.\n", "text/csv")}
    for data, label in (
        ({"model": "tiny-gptq"}, "model"),
        ({"model": TINY, "compare_to": "tiny-gptq"}, "compare_to"),
    ):
        r = client.post("/evaluate", data=data, files=test_file)
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith(
            f"{label}: 'tiny-gptq' is a GPTQ-quantised checkpoint (4-bit): loading it goes "
            "through transformers' GPTQ integration, and the gptqmodel and optimum packages "
            "are not installed"
        ), r.json()
    _no_jobs(client)
