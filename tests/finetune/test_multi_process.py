"""`gpus: 2` on the CPU: the training step launches the recipe under `accelerate launch` as
two gloo ranks, to the end and again with --resume; rank 0 alone reports and saves."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api.config import REPO_ROOT, Settings
from api.finetune import ranks
from api.finetune.kinds import fine_tune_kinds
from api.finetune.service import Upload, submit_fine_tune
from api.finetune.spec import FineTuneSpec
from api.jobs.runner import JobRunner
from api.jobs.store import JobStore
from api.models.catalog import BaseCatalog
from api.models.registry import VariantRegistry
from tests.utils.devices import CPU
from tests.utils.tiny_model import TINY, qa_csv


def run_step(job, store, *extra):
    """As the runner starts a training step: its own process group, output to train.log."""
    with open(job.files.log, "ab") as log:
        return subprocess.run(
            [sys.executable, "-m", "api.finetune.recipe", str(job.job_dir), "--db", str(store.path)]
            + list(extra),
            cwd=REPO_ROOT,
            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},  # CPU ranks on any host
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            timeout=600,
        ).returncode


def step_events(store, job_id, kind="progress"):
    return [e.data["step"] for e in store.events(job_id) if e.type == kind]


@pytest.fixture(scope="module")
def two_process_job(tmp_path_factory, tiny_models_dir):
    """Two steps on two CPU ranks, a checkpoint after each."""
    if (os.cpu_count() or 1) < 2:
        pytest.fail("this test needs 2 cores (a CPU rank per core)")
    data = tmp_path_factory.mktemp("data")
    settings = Settings(data_dir=data, base_models_dir=tiny_models_dir)
    store = JobStore(settings.jobs_db)
    job, _ = submit_fine_tune(
        settings=settings,
        catalog=BaseCatalog(tiny_models_dir),
        registry=VariantRegistry(settings.registry_path),
        store=store,
        runner=JobRunner(store, settings, kinds=fine_tune_kinds()),
        spec=FineTuneSpec(
            model_name="tuned",
            base_model=TINY,
            gpus=2,
            max_steps=2,
            batch_size=2,
            learning_rate=1e-2,
            checkpoint_steps=1,
            eval_rows=1,
            eval_max_new_tokens=2,
            export="none",
        ),
        train=Upload("t.csv", qa_csv(16)),
        eval_=None,
        idempotency_key=None,
        device=CPU,
    )
    code = run_step(job, store)
    assert code == 0, job.files.log.read_text()[-3000:]
    return job, store


def test_two_cpu_ranks_train_to_the_end_with_one_adapter_and_one_reporter(two_process_job):
    job, store = two_process_job
    files = job.files
    assert json.loads(files.spec.read_text())["gpus"] == 2  # the spec records it
    launched = [e for e in store.events(job.id) if e.type == "launch"]
    assert len(launched) == 1 and launched[0].data == {"processes": 2, "device": "cpu"}
    assert "2 CPU processes (gloo)" in launched[0].message
    # one adapter, written once; the checkpoints of both steps; no rank's error
    assert sorted(
        p.name for p in files.root.rglob("adapter_config.json") if "checkpoint" not in str(p)
    ) == ["adapter_config.json"]
    assert files.has_adapter()
    assert sorted(p.name for p in files.checkpoint_dirs()) == ["checkpoint-1", "checkpoint-2"]
    assert not files.error.exists() and not list(files.root.glob("error.rank*.txt"))
    # every step reported once: by rank 0 only
    assert step_events(store, job.id) == [1, 2]
    assert step_events(store, job.id, "checkpoint") == [1, 2]
    assert len([e for e in store.events(job.id) if e.type == "evaluating"]) == 1
    metrics = store.get(job.id).metrics
    assert metrics["processes"] == 2 and metrics["steps"] == 2 and metrics["device"] == "cpu"
    assert json.loads(files.metrics.read_text()) == metrics
    # the Trainer ran as a world of 2: each rank saved its own random state
    state = json.loads((files.checkpoints / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert sorted(p.name for p in (files.checkpoints / "checkpoint-2").glob("rng_state*")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]


def test_two_cpu_ranks_resume_from_the_last_checkpoint(two_process_job):
    job, store = two_process_job
    spec = json.loads(job.files.spec.read_text())
    job.files.spec.write_text(json.dumps({**spec, "max_steps": 3}))  # one step more
    before = len(store.events(job.id))
    assert run_step(job, store, "--resume") == 0, job.files.log.read_text()[-3000:]
    new = store.events(job.id)[before:]
    assert [e.data["step"] for e in new if e.type == "progress"] == [3]  # 1-2 not trained again
    assert [e.data["step"] for e in new if e.type == "checkpoint"] == [3]
    assert not [e for e in new if e.type == "eval" and e.data.get("step") == 0]  # no "before"
    assert store.get(job.id).metrics["steps"] == 3


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_rank_leaves_one_error_for_the_runner(two_process_job, monkeypatch, failing):
    """The launcher with a step module that fails on one rank, without training."""
    job, store = two_process_job
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("RANK_DOUBLE", f"fail:{failing}")
    with pytest.raises(SystemExit) as stopped:
        ranks.launch("tests.utils.rank_double", job.job_dir, store, False, 2)
    assert stopped.value.code != 0
    assert job.files.error.read_text() == f"RuntimeError: rank {failing} failed on purpose"
    assert not list(job.files.root.glob("error.rank*.txt"))  # the runner reads error.txt only
    job.files.error.unlink()


def test_killing_the_step_process_group_stops_every_rank(two_process_job, tmp_path):
    """What the runner's cancel does: SIGTERM to the step's process group."""
    job, store = two_process_job
    launcher = (
        "from api.finetune.ranks import launch_first; "
        "launch_first('tests.utils.rank_double', description='launch')"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "RANK_DOUBLE": f"wait:{tmp_path}"}
    step = subprocess.Popen(
        [sys.executable, "-c", launcher, str(job.job_dir), "--db", str(store.path)],
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("rank-*.pid"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = [int(p.read_text()) for p in tmp_path.glob("rank-*.pid")]
    assert len(pids) == 2, "the two ranks never started"
    os.killpg(step.pid, signal.SIGTERM)
    step.wait(timeout=30)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")
