"""Follow a job's events (GET /jobs/{id}/events) with a rich progress bar: step, loss, eta.

Ctrl-C asks whether to cancel the job; either way `llmp` then leaves with 130, and a job
that was not cancelled keeps running on the server.
"""

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.prompt import Confirm

from api.cli.client import INTERRUPTED, JOB_CANCELLED, JOB_FAILED, Api, CliExit

console = Console(stderr=True)  # progress on stderr; stdout keeps what scripts read
ENDS = {"succeeded": 0, "error": JOB_FAILED, "cancelled": JOB_CANCELLED}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _eta(seconds: Any) -> str:
    if not _number(seconds):
        return "eta -"
    minutes, secs = divmod(int(seconds), 60)
    return f"eta {minutes}:{secs:02d}"


def _fields(data: dict[str, Any]) -> dict[str, str]:
    loss = data.get("loss")
    return {
        "steps": f"step {data.get('step', 0)}/{data.get('total_steps', '?')}",
        "loss": f"loss {loss:.4f}" if isinstance(loss, int | float) else "loss -",
        "eta": _eta(data.get("eta_seconds")),
    }


def follow(api: Api, job_id: str) -> dict[str, Any]:
    """Show the job's events until it ends; returns the job, or raises CliExit when it
    failed (4) or was cancelled (5)."""
    try:
        _show(api, job_id)
    except KeyboardInterrupt:
        console.print()
        if Confirm.ask(f"Cancel job {job_id}?", console=console, default=False):
            api.json("POST", f"/jobs/{job_id}/cancel")
            raise CliExit(f"Job {job_id} cancelled.", INTERRUPTED) from None
        raise CliExit(
            f"Stopped following; job {job_id} keeps running (`llmp jobs follow {job_id}`).",
            INTERRUPTED,
        ) from None
    job = api.json("GET", f"/jobs/{job_id}")
    code = ENDS.get(job["status"] if job["status"] != "failed" else "error", 0)
    if code:
        raise CliExit(f"Job {job_id} {job['status']}: {job.get('error') or ''}".strip(), code)
    return job


def _show(api: Api, job_id: str) -> None:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[steps]}"),
        TextColumn("{task.fields[loss]}"),
        TextColumn("{task.fields[eta]}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        bar = progress.add_task(job_id, total=None, **_fields({}))  # type: ignore[arg-type]
        seen: dict[str, Any] = {}  # the latest step, loss and eta over all events
        for event, data in api.sse(f"/jobs/{job_id}/events"):
            numbers = {k: v for k, v in (data.get("data") or {}).items() if _number(v)}
            seen.update(numbers)  # an export's `step` is a name, not a number
            values = seen
            if "total_steps" in values:
                progress.update(
                    bar,
                    total=values["total_steps"],
                    completed=values.get("step", 0),
                    **_fields(values),  # type: ignore[arg-type]
                )
            if event not in ("progress", "eval") or not console.is_terminal:
                progress.console.print(f"{event}: {data['message']}")  # the bar shows these
            if event in ENDS:
                return
