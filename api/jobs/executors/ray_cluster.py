"""The `ray` executor: each step runs in its own Ray actor, with the resources it needs.

`LLM_RAY_ADDRESS=local` starts a private Ray instance inside the API process (one host,
all its GPUs); `auto` or `HOST:PORT` joins a cluster that `ray start` runs. A training step
asks for the job's `gpus` (default 1; 0 on a cluster without GPUs, where it trains on CPUs),
an export step for none; both for LLM_RAY_STEP_CPUS and LLM_RAY_STEP_MEMORY_GB. Ray queues
what does not fit: a job waits in `queued` until its actor is placed.

Failures: an actor whose node dies is restarted on another node up to LLM_RAY_NODE_RETRIES
times and its step runs again there, from the job's last checkpoint (ray_actor.py). The
actors belong to the API's Ray connection: when the API process ends, Ray ends them and
their step processes, and the API's next start re-queues the jobs (JobRunner.recover).

Ray is imported only here, and only when the executor opens (`make run` needs no Ray).
"""

import logging
import signal
from typing import Any

from api.config import REPO_ROOT, Settings
from api.jobs.executors.base import Executor, Placement, StepHandle, StepLaunch, StepRefused
from api.jobs.executors.process import GRACE_SECONDS
from api.jobs.executors.ray_actor import StepActor


class RayHandle(StepHandle):
    def __init__(self, ray: Any, actor: Any, payload: dict[str, Any]):
        self._ray, self._actor = ray, actor
        self._where = actor.where.remote()
        self._run = actor.run.remote(payload)
        self._killed = False
        self._notes: list[str] = []

    def placed(self) -> Placement | None:
        try:
            where = self._ray.get(self._where)
        except self._ray.exceptions.RayError:
            return None  # killed before it was placed
        return Placement(
            node=where["node"],
            host=where["host"],
            gpu_ids=tuple(where["gpu_ids"]),
            cuda_visible_devices=where["cuda_visible_devices"],
        )

    def wait(self) -> int:
        try:
            result = self._ray.get(self._run)
        except self._ray.exceptions.RayError as exc:
            if not self._killed:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                self.lost = f"the Ray actor running the step was lost ({reason})"
            return -signal.SIGKILL
        finally:
            self._ray.kill(self._actor, no_restart=True)  # frees its resources
        if result["restarted"]:
            self._notes.append(
                f"The Ray node running this step was lost; the step ran again on node "
                f"{result['node'][:12]} ({result['host']})"
                + (", resuming from the last checkpoint." if result["resumed"] else ".")
            )
        return int(result["code"])

    def kill(self) -> None:
        self._killed = True
        ready, _ = self._ray.wait([self._where], timeout=0)
        if ready:  # placed: let the step clean up on SIGTERM first
            try:
                self._ray.get(
                    self._actor.stop.options(max_task_retries=0).remote(GRACE_SECONDS),
                    timeout=GRACE_SECONDS + 5,
                )
            except self._ray.exceptions.RayError:
                pass
        self._ray.kill(self._actor, no_restart=True)  # the step process dies with the actor

    def notes(self) -> list[str]:
        return self._notes


class RayExecutor(Executor):
    name = "ray"
    local = False

    def __init__(self, settings: Settings):
        self.settings = settings
        self._ray: Any = None
        self._actor: Any = None
        self._owned = False

    @property
    def capacity(self) -> int:
        return self.settings.ray_max_jobs

    def open(self) -> None:
        try:
            import ray
        except ImportError as exc:
            raise RuntimeError(
                "LLM_JOB_EXECUTOR=ray needs Ray: install it with `pip install -e '.[cluster]'`."
            ) from exc
        address = self.settings.ray_address
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False} if address == "local" else {}
            try:
                ray.init(
                    address=address,
                    namespace="llmp-jobs",
                    # the actors import api.* on every node: the code sits at the same path
                    runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}},
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    **options,
                )
            except ConnectionError as exc:
                raise RuntimeError(
                    f"Cannot reach the Ray cluster at LLM_RAY_ADDRESS={address!r}: {exc}. "
                    "Start it with `ray start --head` or set LLM_RAY_ADDRESS=local."
                ) from exc
            self._owned = True
        self._ray = ray
        self._actor = ray.remote(StepActor)

    def close(self) -> None:
        if self._owned and self._ray is not None:
            self._ray.shutdown()
        self._owned = False

    def start(self, launch: StepLaunch) -> RayHandle:
        gpus = self._gpus(launch.gpus)
        cpus = self.settings.ray_step_cpus
        memory = self.settings.ray_step_memory_gb
        self._check_fits(gpus, cpus, memory)
        retries = self.settings.ray_node_retries
        actor = self._actor.options(
            num_gpus=gpus,
            num_cpus=cpus,
            memory=int(memory * 1024**3) if memory else None,
            max_restarts=retries,
            max_task_retries=retries,
            max_concurrency=2,  # run() and stop()
        ).remote()
        payload = {
            "module": launch.module,
            "job_dir": str(launch.job_dir),
            "db": launch.db,
            "extra": launch.extra,
            "resumable": launch.resumable,
            "env": launch.env,
            "cwd": str(REPO_ROOT),
        }
        return RayHandle(self._ray, actor, payload)

    def _nodes(self) -> list[dict[str, float]]:
        return [n["Resources"] for n in self._ray.nodes() if n.get("Alive")]

    def _gpus(self, wanted: int) -> int:
        """The GPUs a step asks for: none on a cluster that has none (it trains on CPUs)."""
        if wanted and not any(node.get("GPU", 0) for node in self._nodes()):
            return 0
        return wanted

    def _check_fits(self, gpus: int, cpus: float, memory_gb: float | None) -> None:
        nodes = self._nodes()
        memory = (memory_gb or 0) * 1024**3
        if any(
            n.get("GPU", 0) >= gpus and n.get("CPU", 0) >= cpus and n.get("memory", 0) >= memory
            for n in nodes
        ):
            return
        most = max((int(n.get("GPU", 0)) for n in nodes), default=0)
        raise StepRefused(
            f"it needs {gpus} GPU(s), {cpus:g} CPU(s)"
            + (f" and {memory_gb:g} GB of memory" if memory_gb else "")
            + f" on one Ray node, and no node of the cluster has that (the most GPUs on one "
            f"node: {most}). Add a node (`ray start --address ...`) or ask for fewer."
        )
