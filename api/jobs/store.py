"""Jobs and their events, persisted in SQLite (DATA_DIR/jobs.sqlite) or in the shared
PostgreSQL database (LLM_DATABASE_URL, api/db).

Both the API process and each job's subprocess write here (on SQLite, WAL mode lets them do
so concurrently). A job in an OWNED state records the replica working on it and a lease that
replica renews (api/jobs/runner.py); recovery touches only its own jobs and expired leases.
Terminal states never change: every transition names the states it may leave, and the UPDATE
only matches those.
"""

from __future__ import annotations

import builtins
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Row, bindparam, text
from sqlalchemy.exc import IntegrityError

from api.db import Database
from api.db.migrate import Migration
from api.errors import Conflict, NotFound
from api.jobs.layout import JobFiles

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

_JOBS = """
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
"""
_EVENTS = """
CREATE TABLE IF NOT EXISTS events (
    seq        {seq},
    job_id     TEXT NOT NULL REFERENCES jobs(id),
    created_at TEXT NOT NULL,
    type       TEXT NOT NULL,
    message    TEXT NOT NULL,
    data       TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
"""
# Migrations (api/db/migrate.py): 1 the tables; 2 which replica works on a job, until when
# (api/jobs/runner.py renews the lease while it runs the job; an expired one is taken over).
_MIGRATIONS: list[Migration] = [
    {
        "sqlite": _JOBS + _EVENTS.format(seq="INTEGER PRIMARY KEY AUTOINCREMENT"),
        "postgresql": _JOBS + _EVENTS.format(seq="BIGSERIAL PRIMARY KEY"),
    },
    "ALTER TABLE jobs ADD COLUMN owner TEXT; ALTER TABLE jobs ADD COLUMN lease_until TEXT; "
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created_at)",
]
# States in which a replica works on the job: each has an owner and a lease.
OWNED: tuple[JobState, ...] = ("validating_files", "running", "exporting")


def now(after: float = 0.0) -> str:
    """UTC now (plus `after` seconds) as ISO text, which sorts in time order."""
    return (datetime.now(UTC) + timedelta(seconds=after)).isoformat(timespec="milliseconds")


def default_replica() -> str:
    return os.environ.get("LLM_REPLICA_ID") or socket.gethostname()


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
    owner: str | None = None  # the replica that works on it (OWNED states), until lease_until
    lease_until: str | None = None

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
    def __init__(
        self,
        target: str | Path,
        *,
        replica: str | None = None,
        lease_seconds: float = 30.0,
    ):
        """`target`: the SQLite file or the database URL (a step process gets it as `--db`).
        `replica`: the owner this process records (default LLM_REPLICA_ID, else the hostname);
        `lease_seconds`: how long its claim on a job lasts without renewal."""
        self.db = Database(target, store="jobs", migrations=_MIGRATIONS, wal=True)
        self.replica = replica or default_replica()
        self.lease_seconds = lease_seconds
        self._connect = self.db.connect

    @property
    def path(self) -> Path | str:
        """What step processes get as `--db`: the file, or the URL without its password."""
        return self.db.sqlite_path or self.db.shown

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
                    text(
                        "INSERT INTO jobs (id, kind, state, model_name, base_model, spec, "
                        "job_dir, created_at, idempotency_key, owner, lease_until) VALUES (:id, "
                        ":kind, 'validating_files', :model_name, :base_model, :spec, :job_dir, "
                        ":created_at, :key, :owner, :lease)"
                    ),
                    {
                        "id": job_id,
                        "kind": kind,
                        "model_name": model_name,
                        "base_model": base_model,
                        "spec": json.dumps(spec),
                        "job_dir": str(job_dir),
                        "created_at": now(),
                        "key": idempotency_key,
                        "owner": self.replica,
                        "lease": now(self.lease_seconds),
                    },
                )
                _add_event(db, job_id, "validating_files", "Validating the training files.", {})
        except IntegrityError as exc:  # the UNIQUE idempotency key, on either dialect
            raise Conflict(f"Idempotency-Key {idempotency_key!r} is already used.") from exc
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id}).first()
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
            row = db.execute(
                text("SELECT * FROM jobs WHERE idempotency_key = :key"), {"key": key}
            ).first()
        return _to_job(row) if row else None

    def list(
        self,
        *,
        limit: int = 100,
        states: tuple[JobState, ...] | None = None,
        kind: JobKindName | None = None,
    ) -> list[Job]:
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        if states:
            where.append("state IN :states")
            params["states"] = list(states)
        if kind:
            where.append("kind = :kind")
            params["kind"] = kind
        query = "SELECT * FROM jobs" + (f" WHERE {' AND '.join(where)}" if where else "")
        statement = text(query + " ORDER BY created_at DESC LIMIT :limit")
        if states:
            statement = statement.bindparams(bindparam("states", expanding=True))
        with self._connect() as db:
            rows = db.execute(statement, params).all()
        return [_to_job(r) for r in rows]

    def next_queued(self) -> Job | None:
        with self._connect() as db:
            row = db.execute(
                text("SELECT * FROM jobs WHERE state = 'queued' ORDER BY created_at LIMIT 1")
            ).first()
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
        """Move to `to` if the job is in one of `allowed_from`; record an event when it moves.
        Moving to `running` or `exporting` makes the job this replica's, with a fresh lease."""
        sets: list[str] = ["state = :to"]
        params: dict[str, Any] = {"to": to, "id": job_id, "from": list(allowed_from)}
        if error is not None:
            sets.append("error = :error")
            params["error"] = error
        if to == "running":
            sets.append("started_at = COALESCE(started_at, :started)")
            params["started"] = now()
        if to in ("running", "exporting"):
            sets += ["owner = :owner", "lease_until = :lease"]
            params |= {"owner": self.replica, "lease": now(self.lease_seconds)}
        if to in TERMINAL:
            sets.append("finished_at = :finished")
            params["finished"] = now()
        statement = text(
            f"UPDATE jobs SET {', '.join(sets)} WHERE id = :id AND state IN :from"
        ).bindparams(bindparam("from", expanding=True))
        with self._connect() as db:  # the state and its event in one transaction
            moved = db.execute(statement, params).rowcount > 0
            if moved:
                _add_event(db, job_id, to if to != "failed" else "error", message, data)
        return moved

    # ------------------------------------------------------------ replicas
    def renew(self, queued: Iterable[str] = ()) -> int:
        """Extend the leases of the jobs this replica works on, and of the `queued` ones it
        has taken (they wait for the executor to place them); how many it holds."""
        statement = text(
            "UPDATE jobs SET lease_until = :lease WHERE owner = :owner AND "
            "(state IN :owned OR (state = 'queued' AND id IN :queued))"
        ).bindparams(bindparam("owned", expanding=True), bindparam("queued", expanding=True))
        with self._connect() as db:
            return db.execute(
                statement,
                {
                    "lease": now(self.lease_seconds),
                    "owner": self.replica,
                    "owned": list(OWNED),
                    "queued": list(queued) or [""],
                },
            ).rowcount

    def recoverable(self, *, own: bool = True) -> builtins.list[Job]:
        """Jobs in an OWNED state that nobody is known to work on: with `own`, this replica's
        (from before it restarted); always those without an owner or with an expired lease."""
        mine = "owner = :owner OR " if own else ""
        statement = text(
            "SELECT * FROM jobs WHERE state IN :owned AND "
            f"({mine}owner IS NULL OR lease_until IS NULL OR lease_until < :now) "
            "ORDER BY created_at"
        ).bindparams(bindparam("owned", expanding=True))
        with self._connect() as db:
            rows = db.execute(
                statement, {"owner": self.replica, "owned": list(OWNED), "now": now()}
            ).all()
        return [_to_job(r) for r in rows]

    def claim(self, job_id: str) -> bool:
        """Make the job this replica's if it is already, has no owner, or its owner's lease
        expired (atomic: of two replicas taking over one job, one wins)."""
        with self._connect() as db:
            return (
                db.execute(
                    text(
                        "UPDATE jobs SET owner = :owner, lease_until = :lease WHERE id = :id "
                        "AND (owner = :owner OR owner IS NULL OR lease_until IS NULL "
                        "OR lease_until < :now)"
                    ),
                    {
                        "owner": self.replica,
                        "lease": now(self.lease_seconds),
                        "id": job_id,
                        "now": now(),
                    },
                ).rowcount
                > 0
            )

    # ------------------------------------------------------------ the rest
    def delete(self, job_id: str) -> None:
        """Forget a finished job and its events (its files are the caller's to remove)."""
        with self._connect() as db:
            db.execute(text("DELETE FROM events WHERE job_id = :id"), {"id": job_id})
            db.execute(
                text("DELETE FROM jobs WHERE id = :id AND state IN :terminal").bindparams(
                    bindparam("terminal", expanding=True)
                ),
                {"id": job_id, "terminal": list(TERMINAL)},
            )

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute(
                text("UPDATE jobs SET progress = :p WHERE id = :id"),
                {"p": json.dumps(progress), "id": job_id},
            )

    def set_metrics(self, job_id: str, metrics: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute(
                text("UPDATE jobs SET metrics = :m WHERE id = :id"),
                {"m": json.dumps(metrics), "id": job_id},
            )

    def add_event(self, job_id: str, type_: str, message: str, **data: Any) -> None:
        with self._connect() as db:
            _add_event(db, job_id, type_, message, data)

    def events(self, job_id: str, *, after: int = 0, limit: int = 1000) -> builtins.list[Event]:
        with self._connect() as db:
            rows = db.execute(
                text(
                    "SELECT * FROM events WHERE job_id = :id AND seq > :after "
                    "ORDER BY seq LIMIT :limit"
                ),
                {"id": job_id, "after": after, "limit": limit},
            ).all()
        return [
            Event(
                seq=r.seq,
                job_id=r.job_id,
                created_at=r.created_at,
                type=r.type,
                message=r.message,
                data=json.loads(r.data),
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


def _add_event(db: Connection, job_id: str, type_: str, message: str, data: dict[str, Any]) -> None:
    db.execute(
        text(
            "INSERT INTO events (job_id, created_at, type, message, data) "
            "VALUES (:id, :at, :type, :message, :data)"
        ),
        {"id": job_id, "at": now(), "type": type_, "message": message, "data": json.dumps(data)},
    )


def _to_job(row: Row[Any]) -> Job:
    d = dict(row._mapping)
    return Job(
        **{
            **d,
            "spec": json.loads(d["spec"]),
            "job_dir": Path(d["job_dir"]),
            "progress": json.loads(d["progress"]),
            "metrics": json.loads(d["metrics"]) if d["metrics"] else None,
        }
    )
