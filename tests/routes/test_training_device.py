"""The training device through the API: /health shows it, submissions are checked against it,
LLM_REQUIRE_CUDA refuses to start (or to train) without CUDA, and a job resolved for a GPU
fails rather than training on the CPU. Jobs here run the real recipe in a child process with
CUDA_VISIBLE_DEVICES="" so that it sees no GPU on any host."""

import json

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.finetune import device
from api.main import create_app
from tests.utils.devices import CPU, H200
from tests.utils.jobs import _no_jobs, submit, wait_for


@pytest.fixture
def host(monkeypatch):
    """host(found): the API process believes its probe found this device."""

    def use(found: device.TrainingDevice) -> None:
        monkeypatch.setattr(device, "_known", found)

    return use


@pytest.fixture
def no_gpu_for_children(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def test_health_shows_the_probed_training_device(make_client):
    import torch

    device.training_device()  # the probe has answered (start-up only starts it)
    training = make_client().get("/health").json()["training"]
    assert training == {
        **json.loads(json.dumps(device.training_device().public())),
        "require_cuda": False,
    }
    assert training["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert training["torch"] == torch.__version__
    assert training["bitsandbytes"] is not None  # pinned and importable on Linux
    assert training["qlora"] is torch.cuda.is_available()


def test_health_never_waits_for_the_probe(make_client, monkeypatch):
    import threading

    answer = threading.Event()

    def slow_probe(command=None):
        answer.wait(30)
        return CPU

    monkeypatch.setattr(device, "_known", None)
    monkeypatch.setattr(device, "probe", slow_probe)
    client = make_client()  # start-up starts the probe in the background
    assert client.get("/health").json()["training"] == {"device": "probing", "require_cuda": False}
    answer.set()
    assert device.training_device() == CPU
    assert client.get("/health").json()["training"]["device"] == "cpu"


def test_health_on_a_gpu_host_lists_the_gpus(make_client, host):
    host(H200)
    training = make_client(require_cuda=True).get("/health").json()["training"]
    assert training == {
        "device": "cuda",
        "cuda": True,
        "gpus": ["NVIDIA H200"],
        "torch": "2.13.0+cu130",
        "torch_cuda": "13.0",
        "bitsandbytes": "0.50.2",
        "notes": [],
        "bf16": True,
        "cpu_bf16_speedup": None,  # measured on CPU hosts only
        "flash_attn": None,  # probed on CUDA hosts only
        "liger_kernel": None,
        "qlora": True,
        "require_cuda": True,
    }


def test_require_cuda_without_cuda_refuses_to_start(tmp_path, base_models_dir, host):
    host(CPU)
    settings = Settings(
        data_dir=tmp_path / "data", base_models_dir=base_models_dir, require_cuda=True
    )
    with pytest.raises(
        RuntimeError,
        match="^LLM_REQUIRE_CUDA is set but torch.cuda.is_available"
        "\\(\\) is False \\(torch 2.13.0\\+cpu, a CPU-only "
        "build\\), so training would run on the CPU",
    ):
        with TestClient(create_app(settings)):
            pass
    assert not settings.data_dir.exists()  # refused before anything was started


def test_quantised_bits_and_paged_optimizers_without_cuda_are_422(
    make_client, tiny_models_dir, host, no_gpu_for_children
):
    host(device.probe())  # the real probe, in a child that sees no GPU
    client = make_client(base_models_dir=tiny_models_dir)
    r = submit(client, bits="4", optimizer="paged_adamw_8bit")
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert [e.split(":")[0] for e in errors] == ["bits", "optimizer"]
    assert errors[0].startswith(
        "bits: bits=4 (QLoRA/int8) needs a CUDA GPU; this host has none: "
        "torch.cuda.is_available() is False (torch "
    )
    assert errors[1].startswith("optimizer: paged_adamw_8bit is a bitsandbytes paged optimizer")
    assert r.json()["detail"].startswith("The training device cannot run this job: bits: ")
    assert submit(client, bits="8").status_code == 422
    assert submit(client, optimizer="paged_adamw_32bit").status_code == 422
    _no_jobs(client)


def test_a_job_resolved_for_a_gpu_fails_without_one_instead_of_training_on_the_cpu(
    make_client, tiny_models_dir, host, no_gpu_for_children
):
    host(H200)  # accepted by an API that saw a GPU; the GPU is gone when the job runs
    client = make_client(base_models_dir=tiny_models_dir, job_poll_seconds=0.1)
    job = submit(client).json()
    assert (job["hyperparameters"]["bits"], job["hyperparameters"]["optimizer"]) == (
        4,
        "paged_adamw_8bit",
    )
    done = wait_for(client, job["id"], ("succeeded", "failed"))
    assert done["status"] == "failed"
    assert done["error"].startswith(
        "Training failed: RuntimeError: bits: bits=4 (QLoRA/int8) "
        "needs a CUDA GPU; this host has none"
    )
    assert not (client.app.state.settings.jobs_dir / job["id"] / "checkpoints").exists()


def test_require_cuda_fails_a_job_when_cuda_is_gone_at_run_time(
    make_client, tiny_models_dir, host, no_gpu_for_children
):
    host(H200)
    client = make_client(base_models_dir=tiny_models_dir, job_poll_seconds=0.1, require_cuda=True)
    job = submit(client, bits="16").json()
    assert job["hyperparameters"]["optimizer"] == "adamw_torch"
    done = wait_for(client, job["id"], ("succeeded", "failed"))
    assert done["status"] == "failed"
    assert done["error"].startswith(
        "Training failed: RuntimeError: LLM_REQUIRE_CUDA is set but "
        "torch.cuda.is_available() is False"
    )
    assert not (client.app.state.settings.jobs_dir / job["id"] / "checkpoints").exists()
