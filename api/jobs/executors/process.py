"""A step process: `python -m MODULE JOB_DIR --db DB [ARGS]` in its own process group, its
output appended to the job's train.log and its pid in the job's pid file.

Both executors start steps through here: the local one in the API process, the Ray one
inside the actor on the node it was placed on. The process gets SIGKILL when the thread
that started it dies (api/childproc.py), so the starting thread waits for it.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from api.childproc import die_with_parent
from api.jobs.layout import JobFiles

GRACE_SECONDS = 10.0  # between SIGTERM (a step cleans up) and SIGKILL


def step_command(module: str, job_dir: Path, db: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", module, str(job_dir), "--db", db, *extra]


def start_step(
    command: list[str],
    files: JobFiles,
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    header: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start the step; `header` is a line written to train.log before its output."""
    files.error.unlink(missing_ok=True)
    with open(files.log, "ab") as out:
        if header:
            out.write(f"{header}\n".encode())
            out.flush()
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group
            preexec_fn=die_with_parent(),
        )
    files.pid.write_text(str(proc.pid))
    return proc


def terminate(proc: subprocess.Popen[bytes], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM the step's process group, SIGKILL it when it has not ended after `grace`."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
