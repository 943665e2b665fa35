"""The default executor: each step is a child process of the API, one training job at a
time (the host's GPU is not shared between trainings)."""

import subprocess

from api.config import REPO_ROOT
from api.jobs.executors.base import Executor, Placement, StepHandle, StepLaunch
from api.jobs.executors.process import start_step, step_command, terminate
from api.jobs.layout import JobFiles


class LocalHandle(StepHandle):
    def __init__(self, proc: subprocess.Popen[bytes]):
        self.proc = proc

    def placed(self) -> Placement:
        return Placement()

    def wait(self) -> int:
        return self.proc.wait()

    def kill(self) -> None:
        terminate(self.proc)


class LocalExecutor(Executor):
    name = "local"
    local = True

    @property
    def capacity(self) -> int:
        return 1

    def start(self, launch: StepLaunch) -> LocalHandle:
        """Start the step process; call from the thread that waits for it (a child gets
        SIGKILL when the thread that started it ends)."""
        command = step_command(launch.module, launch.job_dir, launch.db, launch.extra)
        proc = start_step(command, JobFiles(launch.job_dir), cwd=REPO_ROOT, env=launch.env or None)
        return LocalHandle(proc)
