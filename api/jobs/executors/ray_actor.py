"""What runs on a Ray node: one actor per step, holding the step's GPUs, CPUs and memory.

`run` starts the same step process as the local executor (api/jobs/executors/process.py)
on the node the actor was placed on, with CUDA_VISIBLE_DEVICES set to the GPUs Ray gave the
actor, and waits for it; its output goes to the job's train.log and its pid to the job's
pid file on the shared data dir. `stop` (a second thread: the actor runs two calls at once)
ends the process group. When the actor's worker dies (`ray.kill`, a lost node) the step
process gets SIGKILL with it (PR_SET_PDEATHSIG). When Ray restarts the actor on another node
after a node was lost, it runs `run` again there, which resumes from the job's last
checkpoint when the step is resumable.

This module imports no Ray at import time: the executor wraps the class with ray.remote.
"""

import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from api.jobs.executors.process import start_step, step_command, terminate
from api.jobs.layout import JobFiles


class StepActor:
    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self._lock = threading.Lock()

    def where(self) -> dict[str, Any]:
        import ray

        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "gpu_ids": gpu_ids,
            "cuda_visible_devices": ",".join(gpu_ids),
        }

    def run(self, launch: dict[str, Any]) -> dict[str, Any]:
        import ray

        where = self.where()
        job_dir = Path(launch["job_dir"])
        files = JobFiles(job_dir)
        extra = list(launch["extra"])
        restarted = ray.get_runtime_context().was_current_actor_reconstructed
        resumed = False
        if launch["resumable"] and "--resume" not in extra and files.has_checkpoint():
            extra.append("--resume")  # a previous attempt, on a lost node, saved a checkpoint
            resumed = True
        # Only the GPUs Ray gave this actor; none at all for a CPU step.
        env = {**launch["env"], "CUDA_VISIBLE_DEVICES": where["cuda_visible_devices"]}
        header = (
            f"[ray] {launch['module']} on node {where['node'][:12]} ({where['host']}), "
            f"CUDA_VISIBLE_DEVICES={where['cuda_visible_devices'] or '(none)'}"
            + (", resuming from the last checkpoint" if resumed else "")
        )
        started = time.monotonic()
        with self._lock:
            if self._stopping:
                return {**where, "code": -15, "resumed": False, "restarted": restarted}
            self._proc = start_step(
                step_command(launch["module"], job_dir, launch["db"], extra),
                files,
                cwd=Path(launch["cwd"]),
                env=env,
                header=header,
            )
        code = self._proc.wait()
        return {
            **where,
            "code": code,
            "seconds": time.monotonic() - started,
            "resumed": resumed,
            "restarted": restarted,
        }

    def stop(self, grace: float) -> None:
        """End the step process (SIGTERM, SIGKILL after `grace`); the step's own cleanup
        runs on SIGTERM."""
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is not None:
            terminate(proc, grace)
