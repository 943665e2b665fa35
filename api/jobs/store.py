"""Jobs and their events, persisted in SQLite (DATA_DIR/jobs.sqlite).

Both the API process and each job's subprocess write here; WAL mode lets them do so
concurrently. Terminal states never change: every transition names the states it may
leave, and the UPDATE only matches those.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from api.errors import Conflict, NotFound
from api.jobs.layout import JobFiles
from api.sqlite import Database

JobKindName = Literal["fine_tune", "export", "dataset", "evaluate", "push"]
JobState = Literal[
    "validating_files", "queued", "running", "exporting", "succeeded", "failed", "cancelled"
]
TERMINAL: tuple[JobState, ...] = ("succeeded", "failed", "cancelled")
ACTIVE: tuple[JobState, ...] = ("validating_files", "queued", "running", "exporting")
_PREFIX = {
    "dataset": "dsjob",
    "evaluate": "evjob",
    "push": "pushjob",
}  # fine_tune and export jobs: ftjob-...

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL DEFAULT 'fine_tune',
    state           TEXT NOT NULL,
    model_name      TEXT NOT NULL,
    base_model      TEXT NOT NULL,
    spec            TEXT NOT NULL,
    job_dir         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    error           TEXT,
    progress        TEXT NOT NULL DEFAULT '{}',
    metrics         TEXT,
    idempotency_key TEXT UNIQUE
);
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT NOT NULL REFERENCES jobs(id),
    created_at TEXT NOT NULL,
    type       TEXT NOT NULL,
    message    TEXT NOT NULL,
    data       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Job:
    id: str
    kind: JobKindName
    state: JobState
    model_name: str
    base_model: str
    spec: dict[str, Any]
    job_dir: Path
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    progress: dict[str, Any]
    metrics: dict[str, Any] | None
    idempotency_key: str | None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def files(self) -> JobFiles:
        return JobFiles(self.job_dir)


@dataclass(frozen=True)
class Event:
    seq: int
    job_id: str
    created_at: str
    type: str
    message: str
    data: dict[str, Any]


class JobStore:
    def __init__(self, path: Path):
        self.path = path
        self._connect = Database(path, [_SCHEMA], wal=True).connect

    def create(
        self,
        *,
        model_name: str,
        base_model: str,
        spec: dict[str, Any],
        jobs_dir: Path,
        idempotency_key: str | None = None,
        kind: JobKindName = "fine_tune",
    ) -> Job:
        job_id = f"{_PREFIX.get(kind, 'ftjob')}-{uuid.uuid4().hex[:24]}"
        job_dir = jobs_dir / job_id
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT INTO jobs (id, kind, state, model_name, base_model, spec, job_dir, "
                    "created_at, idempotency_key) "
                    "VALUES (?, ?, 'validating_files', ?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        kind,
                        model_name,
                        base_model,
                        json.dumps(spec),
                        str(job_dir),
                        now(),
                        idempotency_key,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"Idempotency-Key {idempotency_key!r} is already used.") from exc
        self.add_event(job_id, "validating_files", "Validating the training files.")
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _to_job(row) if row else None

    def require(self, job_id: str) -> Job:
        """The job, or NotFound with where to look."""
        job = self.get(job_id)
        if job is None:
            raise NotFound(f"Job {job_id!r} not found; GET /jobs lists jobs.")
        return job

    def active(self) -> list[Job]:
        """Every job that has not ended, newest first."""
        return self.list(states=ACTIVE, limit=10_000)

    def by_idempotency_key(self, key: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return _to_job(row) if row else None

    def list(
        self,
        *,
        limit: int = 100,
        states: tuple[JobState, ...] | None = None,
        kind: JobKindName | None = None,
    ) -> list[Job]:
        where: list[str] = []
        args: list[Any] = []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += list(states)
        if kind:
            where.append("kind = ?")
            args.append(kind)
        query = "SELECT * FROM jobs" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self._connect() as db:
            rows = db.execute(
                query + " ORDER BY created_at DESC LIMIT ?", (*args, limit)
            ).fetchall()
        return [_to_job(r) for r in rows]

    def next_queued(self) -> Job | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM jobs WHERE state = 'queued' ORDER BY created_at LIMIT 1"
            ).fetchone()
        return _to_job(row) if row else None

    def transition(
        self,
        job_id: str,
        to: JobState,
        *,
        allowed_from: tuple[JobState, ...],
        message: str,
        error: str | None = None,
        **data: Any,
    ) -> bool:
        """Move to `to` if the job is in one of `allowed_from`; record an event when it moves."""
        sets: list[str] = ["state = ?"]
        params: list[Any] = [to]
        if error is not None:
            sets.append("error = ?")
            params.append(error)
        if to == "running":
            sets.append("started_at = COALESCE(started_at, ?)")
            params.append(now())
        if to in TERMINAL:
            sets.append("finished_at = ?")
            params.append(now())
        with self._connect() as db:
            moved = (
                db.execute(
                    f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND state IN "
                    f"({','.join('?' * len(allowed_from))})",
                    (*params, job_id, *allowed_from),
                ).rowcount
                > 0
            )
        if moved:
            self.add_event(job_id, to if to != "failed" else "error", message, **data)
        return moved

    def delete(self, job_id: str) -> None:
        """Forget a finished job and its events (its files are the caller's to remove)."""
        with self._connect() as db:
            db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            db.execute(
                f"DELETE FROM jobs WHERE id = ? AND state IN ({','.join('?' * len(TERMINAL))})",
                (job_id, *TERMINAL),
            )

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET progress = ? WHERE id = ?", (json.dumps(progress), job_id))

    def set_metrics(self, job_id: str, metrics: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET metrics = ? WHERE id = ?", (json.dumps(metrics), job_id))

    def add_event(self, job_id: str, type_: str, message: str, **data: Any) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO events (job_id, created_at, type, message, data) "
                "VALUES (?, ?, ?, ?, ?)",
                (job_id, now(), type_, message, json.dumps(data)),
            )

    def events(self, job_id: str, *, after: int = 0, limit: int = 1000) -> builtins.list[Event]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (job_id, after, limit),
            ).fetchall()
        return [
            Event(
                seq=r["seq"],
                job_id=r["job_id"],
                created_at=r["created_at"],
                type=r["type"],
                message=r["message"],
                data=json.loads(r["data"]),
            )
            for r in rows
        ]

    def follow(
        self, job_id: str, *, after: int = 0, follow: bool = True, poll_seconds: float = 1.0
    ) -> Iterator[Event]:
        """The job's events after `after`; with `follow`, new ones as they come (polling)
        until the job has ended and every event up to its end was given."""
        last = after
        while True:
            for event in self.events(job_id, after=last):
                last = event.seq
                yield event
            job = self.get(job_id)
            if not follow or job is None or (job.terminal and not self.events(job_id, after=last)):
                return
            time.sleep(poll_seconds)


def _to_job(row: sqlite3.Row) -> Job:
    d = dict(row)
    return Job(
        **{
            **d,
            "spec": json.loads(d["spec"]),
            "job_dir": Path(d["job_dir"]),
            "progress": json.loads(d["progress"]),
            "metrics": json.loads(d["metrics"]) if d["metrics"] else None,
        }
    )
