"""Job steps that work on the CPU yield it to serving: SCHED_IDLE and a niced autogroup.

On a host without a GPU, a training job and llama-server share the cores. llama.cpp decodes
with one thread per core that meets at a barrier hundreds of times per token; when a training
thread holds a core, the barrier waits for the scheduler to give the descheduled llama.cpp
thread its slice again, and decoding collapses (docs/serving.md: 15x slower on 2 cores).

Two things of Linux's scheduler decide who gets the core:
- The step runs in its own session (api/jobs/executors/process.py), and where the kernel groups
  tasks by session (CONFIG_SCHED_AUTOGROUP, on by default in most distributions), the CPU is
  shared fairly between sessions first: a job's session got half the cores whatever the
  priority of its threads. That is why `nice` on the training process did nothing. The step,
  as its session's leader, sets its autogroup's nice value to 19 (/proc/self/autogroup): its
  session then weighs 15 against serving's 1024. A process that does not lead its own session
  leaves the autogroup alone (it would lower the API's, llama-server included).
- Within a group, a SCHED_IDLE thread runs only when no normal thread wants the core, and a
  waking normal thread preempts it at once; where autogroups are off, this alone decides.
Measured with llama-server and a torch loop beside it (docs/serving.md): SCHED_IDLE alone left
the loop half the cores (its own session), the niced autogroup took that back to none.

The step applies both once it knows it works on the CPU (a step that drives a GPU keeps the
normal policy: its CPU thread feeds the GPU); threads and processes it starts afterwards
inherit them. `LLM_JOB_CPU_PRIORITY=normal` turns it off (jobs then share the cores with
serving). An unprivileged process may always lower its own priority but cannot raise it
back, so the choice is made once.
"""

import logging
import os
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Priority = Literal["idle", "normal"]
ENV = "LLM_JOB_CPU_PRIORITY"


def configured() -> Priority:
    """The setting (`LLM_JOB_CPU_PRIORITY`, api/config.py), as the step process reads it."""
    from api.config import get_settings

    return get_settings().job_cpu_priority


def yield_cpu(on_gpu: bool) -> str:
    """Move every thread of this process to SCHED_IDLE, and nice its autogroup when it leads
    its session, unless the step drives a GPU or the setting says `normal`; returns what was
    done and why (recorded in the job's metrics)."""
    if on_gpu:
        return "normal: the job drives a GPU"
    if configured() == "normal":
        return f"normal: {ENV}=normal"
    if not hasattr(os, "SCHED_IDLE"):
        return "normal: this OS has no SCHED_IDLE"
    moved = 0
    for tid in _threads():
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            moved += 1
        except OSError as exc:  # a thread that ended, or a policy the kernel refused
            log.debug("thread %s keeps its policy: %s", tid, exc)
    if not moved:
        return "normal: the scheduler refused SCHED_IDLE"
    return "idle: SCHED_IDLE" + _nice_own_autogroup() + ", serving on the same cores comes first"


AUTOGROUP = Path("/proc/self/autogroup")
AUTOGROUP_NICE = 19


def _nice_own_autogroup() -> str:
    """Lower this session's share of the CPU, when this process leads its own session."""
    if not AUTOGROUP.exists():
        return " (no autogroups on this kernel)"
    if os.getsid(0) != os.getpid():  # a rank under the launching step, or an in-session caller
        return f" (autogroup nice {autogroup_nice()}, left as it is: not its session's leader)"
    try:
        AUTOGROUP.write_text(f"{AUTOGROUP_NICE}\n")
    except OSError as exc:
        return f" (autogroup nice refused: {exc})"
    return f" and autogroup nice {AUTOGROUP_NICE}"


def autogroup_nice(pid: int | str = "self") -> int | None:
    """The nice value of a process's autogroup; None without autogroups."""
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def is_idle(pid: int = 0) -> bool:
    return hasattr(os, "SCHED_IDLE") and os.sched_getscheduler(pid) == os.SCHED_IDLE


def _threads() -> list[int]:
    """This process's thread ids (Linux: /proc/self/task), or the process itself."""
    try:
        return [int(t.name) for t in Path("/proc/self/task").iterdir()]
    except OSError:
        return [0]
