"""Jobs on a real local Ray cluster (LLM_JOB_EXECUTOR=ray), started once for this module:
a head node without GPUs and a node with two fake GPUs (Ray hands out their ids; torch, on
the CPU, trains on the CPU). Two training jobs run at once, each with its own
CUDA_VISIBLE_DEVICES, a third waits for a GPU, a dataset job runs meanwhile; cancel stops
the training process; losing the node mid-training resumes the job on another node from
its last checkpoint."""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import ray
from ray.cluster_utils import Cluster

from api.config import Settings
from api.jobs.kinds import JobKind
from api.jobs.runner import JobRunner
from api.jobs.store import JobStore
from tests.utils.jobs import events, submit, wait_for, wait_until
from tests.utils.runner import queued_job
from tests.utils.wait_step import WAIT_STEP, release

STORE_MB = 80 * 1024 * 1024  # Ray's smallest object store: these tests pass no objects
# The API judges a job by the cluster's GPUs (fake here): without these it would choose
# QLoRA and bf16, which the CPU under the fake GPUs cannot train.
ON_FAKE_GPUS = {"bits": "16", "mixed_precision": "fp32", "optimizer": "adamw_torch"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "num_gpus": 0,
            "object_store_memory": STORE_MB,
            "include_dashboard": False,
        },
    )
    cluster.add_node(num_cpus=4, num_gpus=2, object_store_memory=STORE_MB)
    cluster.wait_for_nodes()
    yield cluster
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()


def typed(store: JobStore, job_id: str, type_: str) -> list:
    return [e for e in store.events(job_id) if e.type == type_]


def test_two_jobs_run_at_once_on_two_gpus_a_third_waits_and_a_dataset_job_is_not_held_up(
    cluster, tmp_path
):
    settings = Settings(
        data_dir=tmp_path,
        job_executor="ray",
        ray_address=cluster.address,
        job_poll_seconds=0.1,
    )
    store = JobStore(settings.jobs_db)
    trainers = [queued_job(store, tmp_path) for _ in range(3)]
    seen: dict[str, list[str]] = {}

    def dataset_work(job, should_stop):  # in the API process, in its own lane
        seen["trainers"] = [store.require(t.id).state for t in trainers]
        return {"report": "Generated nothing (scheduling test)."}

    kinds = {"fine_tune": JobKind(train=WAIT_STEP), "dataset": JobKind(in_process=dataset_work)}
    runner = JobRunner(store, settings, kinds=kinds)
    runner.start()
    try:
        started = wait_until(
            lambda: (s := [t for t in trainers if typed(store, t.id, "env")]) and len(s) >= 2 and s,
            "two training steps to start",
        )
        [waiting] = [t for t in trainers if t not in started]
        time.sleep(1.0)  # the third has had time to start, if Ray had a GPU for it
        assert store.require(waiting.id).state == "queued"
        assert not typed(store, waiting.id, "env")
        # each running step sees its own GPU, the one Ray placed it with
        devices = [typed(store, t.id, "env")[0].data["cuda_visible_devices"] for t in started]
        assert sorted(devices) == ["0", "1"]
        for t, device in zip(started, devices, strict=True):
            [placed] = typed(store, t.id, "placed")
            assert placed.data["cuda_visible_devices"] == device
            assert placed.data["gpu_ids"] == [device]
            assert store.require(t.id).state == "running"

        dataset = queued_job(store, tmp_path, kind="dataset")
        runner.wake()
        wait_until(lambda: store.require(dataset.id).state == "succeeded", "the dataset job")
        states = {t.id: s for t, s in zip(trainers, seen["trainers"], strict=True)}
        assert [states[t.id] for t in started] == ["running", "running"]
        assert states[waiting.id] == "queued"

        release(started[0].job_dir)  # its GPU goes to the waiting job
        wait_until(lambda: typed(store, waiting.id, "env"), "the third job to start")
        third = typed(store, waiting.id, "env")[0].data["cuda_visible_devices"]
        assert third == devices[0]
        for t in trainers:
            release(t.job_dir)
        for t in trainers:
            wait_until(lambda t=t: store.require(t.id).terminal, f"job {t.id} to end")
            assert store.require(t.id).state == "succeeded", store.require(t.id).error

        # more GPUs than any node has: the job fails at once, saying so, instead of waiting
        big = store.create(model_name="big", base_model="tiny", spec={"gpus": 4}, jobs_dir=tmp_path)
        big.job_dir.mkdir()
        store.transition(big.id, "queued", allowed_from=("validating_files",), message="q")
        runner.wake()
        wait_until(lambda: store.require(big.id).terminal, "the oversized job to end")
        failed = store.require(big.id)
        assert failed.state == "failed"
        assert failed.error.startswith("Training failed: it needs 4 GPU(s), 1 CPU(s) on one Ray")
        assert "(the most GPUs on one node: 2)" in failed.error
    finally:
        runner.stop()


@pytest.fixture
def ray_client(make_client, tiny_models_dir, cluster):
    return make_client(
        base_models_dir=tiny_models_dir,
        job_poll_seconds=0.1,
        job_executor="ray",
        ray_address=cluster.address,
    )


def step_process(job_dir: Path) -> psutil.Process | None:
    """The job's step process, from the pid file the actor wrote on the shared data dir."""
    try:
        proc = psutil.Process(int((job_dir / "pid").read_text()))
        return proc if str(job_dir) in " ".join(proc.cmdline()) else None
    except (OSError, ValueError, psutil.Error):
        return None


def test_cancel_stops_the_training_process_on_its_node(ray_client):
    job = submit(ray_client, name="long", max_steps="400", **ON_FAKE_GPUS).json()
    job_dir = ray_client.app.state.settings.jobs_dir / job["id"]
    proc = wait_until(lambda: step_process(job_dir), "the training process")
    assert proc.is_running() and "api.finetune.recipe" in proc.cmdline()
    assert proc.environ()["CUDA_VISIBLE_DEVICES"] in ("0", "1")
    r = ray_client.post(f"/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    wait_until(
        lambda: not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE, "its end", 20
    )
    assert not ray_client.app.state.runner._handles
    assert events(ray_client, job["id"])[-1]["type"] == "cancelled"


def test_a_lost_node_resumes_the_job_from_its_checkpoint_on_another(ray_client, cluster):
    cluster.add_node(num_cpus=2, num_gpus=1, object_store_memory=STORE_MB)
    cluster.wait_for_nodes()
    job = submit(
        ray_client, name="moved", max_steps="30", checkpoint_steps="2", **ON_FAKE_GPUS
    ).json()
    store = JobStore(ray_client.app.state.settings.jobs_db)
    job_dir = ray_client.app.state.settings.jobs_dir / job["id"]
    [placed] = wait_until(lambda: typed(store, job["id"], "placed"), "the job's placement")
    wait_until(
        lambda: any((d / "trainer_state.json").is_file() for d in job_dir.glob("checkpoints/*")),
        "the first checkpoint",
    )
    first = step_process(job_dir)
    first.suspend()  # mid-training however fast this machine trains, until its node dies
    [node] = [n for n in cluster.list_all_nodes() if n.node_id == placed.data["node"]]
    cluster.remove_node(node)  # its raylet and workers die; the step process with them
    wait_until(lambda: not first.is_running() or first.status() == psutil.STATUS_ZOMBIE, "its end")
    done = wait_for(ray_client, job["id"], ("succeeded", "failed"), timeout=600)
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["step"] == 30
    saved = [e.message for e in typed(store, job["id"], "checkpoint")]
    assert len(saved) == len(set(saved))  # no step trained twice: it went on from a checkpoint
    [lost] = typed(store, job["id"], "node_lost")
    assert lost.message.endswith("resuming from the last checkpoint.")
    headers = [line for line in (job_dir / "train.log").read_text().splitlines() if "[ray]" in line]
    assert len(headers) == 2 and "resuming" not in headers[0]
    assert headers[1].endswith("resuming from the last checkpoint")
    assert placed.data["node"][:12] in headers[0] and placed.data["node"][:12] not in headers[1]
    assert os.path.isdir(job_dir / "adapter")


def test_submissions_are_checked_against_the_clusters_gpus_not_the_api_hosts(cluster, tmp_path):
    """In the cluster profile the API's host has no GPU: QLoRA and `gpus` are judged by the
    Ray nodes that will train (here one node with two fake GPUs), read from Ray's table."""
    from api.finetune.device import fit
    from api.finetune.spec import FineTuneSpec
    from api.jobs.capacity import gpus_problem, job_device, training_capacity

    if not ray.is_initialized():
        ray.init(address=cluster.address, log_to_driver=False)
    ray_settings = Settings(data_dir=tmp_path, job_executor="ray", ray_address=cluster.address)
    # the node table as it is now (an earlier test of this module adds and removes nodes)
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    gpus = [int(n.get("GPU", 0)) for n in nodes]
    assert max(gpus) >= 1, nodes
    device = job_device(ray_settings)
    assert device.cuda and device.gpus == ("GPU",) * sum(gpus), device
    assert "Ray cluster" in device.notes[0]
    spec = FineTuneSpec(base_model="smollm2-135m", model_name="tuned", gpus=max(gpus))
    fitted, problems = fit(spec, device)
    assert fitted.bits == 4 and fitted.mixed_precision == "bf16"  # a GPU job, not a CPU one
    assert [p for p in problems if p.startswith("bits")] == []
    capacity = training_capacity(ray_settings)
    assert (capacity.processes, capacity.cuda) == (max(gpus), True)
    too_many = gpus_problem(max(gpus) + 1, capacity) or ""
    assert f"largest node has {max(gpus)} GPU(s)" in too_many
    # the local executor in the same process still judges by this host
    local = Settings(data_dir=tmp_path)
    assert not job_device(local).cuda and not training_capacity(local).cuda
