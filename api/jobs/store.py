"""Jobs and their events, persisted in SQLite (DATA_DIR/jobs.sqlite).

Both the API process and each job's subprocess write here; WAL mode lets them do so
concurrently. Terminal states never change: every transition names the states it may
leave, and the UPDATE only matches those.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.errors import Conflict

TERMINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("validating_files", "queued", "running", "exporting")
_PREFIX = {"dataset": "dsjob"}  # fine_tune and export jobs: ftjob-...

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
    kind: str
    state: str
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
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def create(self, *, model_name: str, base_model: str, spec: dict[str, Any], jobs_dir: Path,
               idempotency_key: str | None = None, kind: str = "fine_tune") -> Job:
        job_id = f"{_PREFIX.get(kind, 'ftjob')}-{uuid.uuid4().hex[:24]}"
        job_dir = jobs_dir / job_id
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT INTO jobs (id, kind, state, model_name, base_model, spec, job_dir, "
                    "created_at, idempotency_key) VALUES (?, ?, 'validating_files', ?, ?, ?, ?, ?, ?)",
                    (job_id, kind, model_name, base_model, json.dumps(spec), str(job_dir), now(),
                     idempotency_key))
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

    def by_idempotency_key(self, key: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return _to_job(row) if row else None

    def list(self, *, limit: int = 100, states: tuple[str, ...] | None = None,
             kind: str | None = None) -> list[Job]:
        where, args = [], []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += list(states)
        if kind:
            where.append("kind = ?")
            args.append(kind)
        query = "SELECT * FROM jobs" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall()
        return [_to_job(r) for r in rows]

    def next_queued(self) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY created_at "
                             "LIMIT 1").fetchone()
        return _to_job(row) if row else None

    def transition(self, job_id: str, to: str, *, allowed_from: tuple[str, ...],
                   message: str, error: str | None = None, **data: Any) -> bool:
        """Move to `to` if the job is in one of `allowed_from`; record an event when it moves."""
        sets, params = ["state = ?"], [to]
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
            moved = db.execute(
                f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND state IN "
                f"({','.join('?' * len(allowed_from))})",
                (*params, job_id, *allowed_from)).rowcount > 0
        if moved:
            self.add_event(job_id, to if to != "failed" else "error", message, **data)
        return moved

    def delete(self, job_id: str) -> None:
        """Forget a finished job and its events (its files are the caller's to remove)."""
        with self._connect() as db:
            db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            db.execute(f"DELETE FROM jobs WHERE id = ? AND state IN ({','.join('?' * len(TERMINAL))})",
                       (job_id, *TERMINAL))

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET progress = ? WHERE id = ?", (json.dumps(progress), job_id))

    def set_metrics(self, job_id: str, metrics: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET metrics = ? WHERE id = ?", (json.dumps(metrics), job_id))

    def add_event(self, job_id: str, type_: str, message: str, **data: Any) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO events (job_id, created_at, type, message, data) "
                       "VALUES (?, ?, ?, ?, ?)", (job_id, now(), type_, message, json.dumps(data)))

    def events(self, job_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq "
                              "LIMIT ?", (job_id, after, limit)).fetchall()
        return [Event(seq=r["seq"], job_id=r["job_id"], created_at=r["created_at"],
                      type=r["type"], message=r["message"], data=json.loads(r["data"]))
                for r in rows]


def _to_job(row: sqlite3.Row) -> Job:
    d = dict(row)
    return Job(**{**d, "spec": json.loads(d["spec"]), "job_dir": Path(d["job_dir"]),
                  "progress": json.loads(d["progress"]),
                  "metrics": json.loads(d["metrics"]) if d["metrics"] else None})
