"""Job steps on the CPU yield it to serving (api/jobs/cpu_priority.py): every thread of the
step moves to SCHED_IDLE, a step that leads its own session (as the executors start it) nices
that session's autogroup, and what it starts afterwards inherits both. Each case runs in a
fresh interpreter, since a process cannot take its normal priority back."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.config import REPO_ROOT
from api.jobs.cpu_priority import autogroup_nice

PROBE = r"""
import json, os, subprocess, sys, threading, time
from api.jobs.cpu_priority import autogroup_nice, is_idle, yield_cpu

stop = threading.Event()
before = threading.Thread(target=stop.wait)  # a thread that exists before the call
before.start()
said = yield_cpu(on_gpu=sys.argv[1] == "gpu")
tids = [int(t) for t in os.listdir("/proc/self/task")]
policies = {tid: os.sched_getscheduler(tid) for tid in tids}
seen = {}
after = threading.Thread(target=lambda: seen.update(idle=is_idle(0)))  # started afterwards
after.start(); after.join()
child = subprocess.run(
    [sys.executable, "-c", "from api.jobs.cpu_priority import autogroup_nice, is_idle;"
     "print(is_idle(), autogroup_nice())"],
    capture_output=True, text=True, check=True,
).stdout.split()
stop.set(); before.join()
print(json.dumps({
    "said": said,
    "threads": len(tids),
    "idle_threads": sum(p == os.SCHED_IDLE for p in policies.values()),
    "thread_started_after": seen["idle"],
    "child": child[0] == "True",
    "autogroup": autogroup_nice(),
    "child_autogroup": None if child[1] == "None" else int(child[1]),
}))
"""


def probe(device: str, session: bool = False, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, device],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=session,  # as api/jobs/executors/process.py starts a step
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_a_cpu_step_moves_every_thread_and_what_it_starts_to_sched_idle():
    ours = autogroup_nice()
    got = probe("cpu")
    assert got["said"].startswith("idle: SCHED_IDLE")
    assert got["threads"] >= 2 and got["idle_threads"] == got["threads"]
    assert got["thread_started_after"] and got["child"]
    # not its session's leader: the autogroup is the caller's (the API's, llama-server's)
    assert (
        "left as it is: not its session's leader" in got["said"] or "no autogroups" in got["said"]
    )
    assert got["autogroup"] == ours == autogroup_nice()


def test_a_step_that_leads_its_session_nices_its_autogroup_and_not_the_callers():
    ours = autogroup_nice()
    got = probe("cpu", session=True)
    assert got["idle_threads"] == got["threads"] and got["child"]
    if Path("/proc/self/autogroup").exists():  # the kernel groups by session (CI's does)
        assert got["said"] == (
            "idle: SCHED_IDLE and autogroup nice 19, serving on the same cores comes first"
        )
        assert got["autogroup"] == got["child_autogroup"] == 19
    else:
        assert "no autogroups" in got["said"] and got["autogroup"] is None
    assert autogroup_nice() == ours  # the test's own session keeps its share


def test_a_step_that_drives_a_gpu_keeps_the_normal_policy():
    got = probe("gpu")
    assert got["said"] == "normal: the job drives a GPU"
    assert got["idle_threads"] == 0
    assert not got["thread_started_after"] and not got["child"]
    assert got["autogroup"] == autogroup_nice()  # the caller's, untouched


def test_the_setting_normal_keeps_the_normal_policy():
    got = probe("cpu", session=True, LLM_JOB_CPU_PRIORITY="normal")
    assert got["said"] == "normal: LLM_JOB_CPU_PRIORITY=normal"
    assert got["idle_threads"] == 0 and not got["child"]
    assert got["autogroup"] in (None, 0)  # a new session's autogroup, as the kernel made it


def test_a_bad_setting_is_refused_naming_the_choices():
    from pydantic import ValidationError

    from api.config import Settings

    with pytest.raises(ValidationError, match="'idle' or 'normal'"):
        Settings(job_cpu_priority="low")  # type: ignore[arg-type]
