"""`gpus` and `sharding` through the API: the schema describes them, bad values and more
processes than the host offers are 422 before any job exists (what is available is in the
message), and the accepted value is recorded in the job's spec. The other `sharding: fsdp`
refusals and its launch are in tests/finetune/test_fsdp.py."""

import dataclasses

import pytest

from api.config import Settings
from api.finetune import device
from api.jobs.capacity import cpu_cores, gpu_capacity, gpus_problem, local_capacity
from tests.utils.devices import CPU, H200
from tests.utils.jobs import _no_jobs, submit

TWO_H200 = dataclasses.replace(H200, gpus=("NVIDIA H200", "NVIDIA H200"))


@pytest.fixture
def client(make_client, tiny_models_dir, monkeypatch):
    monkeypatch.setattr(device, "_known", CPU)  # the probe's answer on a host without a GPU
    return make_client(base_models_dir=tiny_models_dir)


def test_capacity_is_the_gpus_or_else_the_cores(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert gpu_capacity(settings, H200) == 1
    assert gpu_capacity(settings, TWO_H200) == 2
    assert gpu_capacity(settings, CPU) == cpu_cores() >= 1
    assert gpus_problem(2, local_capacity(TWO_H200)) is None
    assert gpus_problem(3, local_capacity(TWO_H200)) == (
        "gpus: 3 training processes asked for, but this host has 2 CUDA GPU(s) "
        "(NVIDIA H200, NVIDIA H200); ask for at most 2."
    )


def test_the_schema_describes_gpus(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    prop = schema["FineTuneForm"]["properties"]["gpus"]  # the Studio's form is built from it
    assert prop["type"] == "integer" and prop["default"] == 1 and prop["minimum"] == 1
    assert prop["title"] == "GPUs"
    assert "DDP" in prop["description"] and "CPU processes (gloo)" in prop["description"]


@pytest.mark.parametrize(
    ("value", "says"),
    [("0", "greater than or equal to 1"), ("1.5", "valid integer"), ("two", "valid integer")],
)
def test_gpus_that_is_not_a_positive_integer_is_422(client, value, says):
    r = submit(client, gpus=value)
    assert r.status_code == 422, r.text
    assert "gpus" in r.text and says in r.text
    _no_jobs(client)


def test_more_processes_than_the_cpu_host_has_cores_is_422(client):
    r = submit(client, gpus=str(cpu_cores() + 1))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith(f"gpus: {cpu_cores() + 1} training processes asked for, but ")
    assert (
        f"no CUDA GPU, so a job trains on CPU processes (gloo), at most one per core: {cpu_cores()} core(s)"
        in detail
    )
    _no_jobs(client)


def test_more_gpus_than_the_host_has_is_422(client, monkeypatch):
    monkeypatch.setattr(device, "_known", H200)
    r = submit(client, gpus="2", bits="16")
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == (
        "gpus: 2 training processes asked for, but this host has 1 CUDA GPU(s) "
        "(NVIDIA H200); ask for at most 1."
    )
    _no_jobs(client)


def test_the_spec_records_gpus(client):
    r = submit(client, gpus="2")
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.json()["hyperparameters"]["gpus"] == 2
    assert client.post(f"/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert client.get(f"/jobs/{job_id}").json()["hyperparameters"]["gpus"] == 2


def test_a_clusters_capacity_is_its_largest_node():
    from api.jobs.capacity import cluster_capacity, cluster_device

    nodes = [
        {"CPU": 2.0},
        {"CPU": 8.0, "GPU": 2.0, "accelerator_type:H100": 1.0},
        {"CPU": 16.0, "GPU": 4.0, "accelerator_type:A100": 1.0},
    ]
    capacity = cluster_capacity(nodes)
    assert (capacity.processes, capacity.cuda) == (4, True)
    device = cluster_device(nodes, CPU)
    assert device.cuda and device.gpus == ("H100",) * 2 + ("A100",) * 4
    assert device.torch == CPU.torch  # same image on every node
    cpu_only = cluster_capacity([{"CPU": 2.0}, {"CPU": 6.0}])
    assert (cpu_only.processes, cpu_only.cuda) == (6, False)
    assert not cluster_device([{"CPU": 6.0}], CPU).cuda


def test_the_schema_describes_sharding(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    prop = schema["FineTuneForm"]["properties"]["sharding"]
    assert prop["enum"] == ["ddp", "fsdp"] and prop["default"] == "ddp"
    assert "FULL_SHARD" in prop["description"] and "needs CUDA GPUs" in prop["description"]


def test_fsdp_on_a_host_without_a_gpu_is_422_saying_to_use_ddp(client):
    r = submit(client, gpus="2", sharding="fsdp")
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == (
        "sharding: fsdp needs CUDA GPUs, and jobs here train on CPU processes (gloo), where "
        "accelerate does not run FSDP; use sharding: ddp."
    )
    _no_jobs(client)


def test_fsdp_on_one_gpu_is_422_saying_to_ask_for_more(client, monkeypatch):
    monkeypatch.setattr(device, "_known", TWO_H200)
    r = submit(client, sharding="fsdp")  # gpus defaults to 1
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(
        "sharding: fsdp splits the base across several GPUs, and gpus is 1; ask for gpus: 2"
    )
    _no_jobs(client)


def test_an_unknown_sharding_is_422(client):
    r = submit(client, gpus="2", sharding="zero3")
    assert r.status_code == 422, r.text
    assert "sharding" in r.text and "'ddp' or 'fsdp'" in r.text
    _no_jobs(client)
