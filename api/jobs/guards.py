"""What active jobs forbid: a model they use or produce cannot be created or deleted meanwhile.

Jobs know the models they train on, ask as a teacher or are producing (`base_model`,
`model_name`); the model service asks these guards before it changes a name.
"""

from api.errors import Conflict
from api.jobs.store import JobStore


def check_not_producing(store: JobStore, name: str) -> None:
    """Conflict while an active job (any kind) is producing a model called `name`."""
    if any(j.model_name == name and j.kind not in ("evaluate", "push") for j in store.active()):
        raise Conflict(
            f"A fine-tuning job is producing a model named {name!r}; choose another name."
        )


def check_no_job_uses(store: JobStore, name: str, *, action: str) -> None:
    """Conflict while an active job uses `name`: a fine-tuning job trains on it (its base),
    a dataset job has it as the teacher, or a job is still producing a model of that name."""
    for job in store.active():
        if job.base_model == name or (job.kind == "evaluate" and job.model_name == name):
            role = {
                "dataset": "the teacher of",
                "evaluate": "evaluated by",
                "push": "pushed to a Hub by",
            }.get(job.kind, "the base of")
            raise Conflict(
                f"Model {name!r} is in use: it is {role} job {job.id} ({job.state}). "
                f"Cancel the job (POST /jobs/{job.id}/cancel) or wait for it to "
                f"end, then {action}."
            )
        if job.model_name == name and job.kind not in ("dataset", "evaluate", "push"):
            raise Conflict(
                f"Model {name!r} does not exist yet: job {job.id} ({job.state}) is "
                f"producing it. Cancel the job (POST /jobs/{job.id}/cancel) to "
                "stop it."
            )
