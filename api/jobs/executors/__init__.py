"""Executors run a job's step processes: here (`local`) or on a Ray cluster (`ray`)."""

from api.config import Settings
from api.jobs.executors.base import Executor


def make_executor(settings: Settings) -> Executor:
    """The executor LLM_JOB_EXECUTOR names; Ray is imported only when it opens."""
    if settings.job_executor == "ray":
        from api.jobs.executors.ray_cluster import RayExecutor

        return RayExecutor(settings)
    from api.jobs.executors.local import LocalExecutor

    return LocalExecutor()
