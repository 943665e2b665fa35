"""Where a job's step processes run: the executor interface the job runner uses.

The runner asks an executor to start a step (`StepLaunch`) and gets a `StepHandle`:
`placed()` blocks until the step holds its resources and says where it runs, `wait()` gives
its exit code, `kill()` stops it wherever it runs (SIGTERM to its process group, then
SIGKILL). The step process itself is the same everywhere (api/jobs/step.py): it reads the
job's directory and writes progress and events into the job store, which stays the source
of truth.

Executors: `local` (api/jobs/executors/local.py; a child of the API process, one training
job at a time) and `ray` (api/jobs/executors/ray_cluster.py; an actor per step on a Ray
cluster, as many at once as the cluster's GPUs allow).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StepLaunch:
    module: str  # run as `python -m MODULE JOB_DIR --db DB [extra]`
    job_dir: Path
    db: str
    extra: list[str] = field(default_factory=list)
    gpus: int = 0  # devices the step needs; 0: CPU only
    # A step re-run after its node was lost continues from the job's last checkpoint.
    resumable: bool = False
    env: dict[str, str] = field(default_factory=dict)  # on top of the node's environment


@dataclass(frozen=True)
class Placement:
    """Where a step runs: `node` is None for the API's own host (the local executor)."""

    node: str | None = None
    host: str | None = None
    gpu_ids: tuple[str, ...] = ()
    cuda_visible_devices: str | None = None


class StepRefused(Exception):
    """The step can never be placed (it asks for more than any node has); the job fails
    with this message."""


class StepHandle(ABC):
    # Set when the executor lost the step (its node died for good): the job's error.
    lost: str | None = None

    @abstractmethod
    def placed(self) -> Placement | None:
        """Block until the step holds its resources; None when it was killed first."""

    @abstractmethod
    def wait(self) -> int:
        """Block until the step process ends; its exit code (negative: killed by a signal)."""

    @abstractmethod
    def kill(self) -> None:
        """Stop the step wherever it runs; returns once it is gone."""

    def notes(self) -> list[str]:
        """What happened to the step on the way that the job's events should say."""
        return []


class Executor(ABC):
    name: str
    local: bool  # steps run on this host (the runner frees this host's GPU before training)

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many step jobs this runner hands to the executor at once."""

    def open(self) -> None:
        """Connect (at the runner's start); raise with what to fix when it cannot."""
        return None

    def close(self) -> None:
        """Disconnect (at the runner's stop)."""
        return None

    @abstractmethod
    def start(self, launch: StepLaunch) -> StepHandle:
        """Start (or queue) the step; raises StepRefused when it can never run."""
