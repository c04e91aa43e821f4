"""The job store: one SQLite file (WAL) shared by the web app and any number of workers.

The web app submits, lists, cancels and retries jobs; workers claim them under a lease.

Leases: a worker claims a queued job inside one ``BEGIN IMMEDIATE`` transaction (SQLite's write
lock), so two workers can never claim the same job. The claim stamps the job with the worker's
id and a lease expiry; the worker renews the lease while it runs. Every later write a worker
makes is fenced by ``WHERE worker = <its id> AND state = 'running'``: a worker whose lease ran
out and whose job was claimed by another can no longer change that job. A lease that expires
(the worker was killed) sends the job back to the queue at the next claim, to resume from its
last checkpoint, until ``max_attempts`` claims have ended that way; then the job fails.

Connections are opened per call, so one ``JobStore`` may be used from any thread or process.
A store that cannot be used (locked past the busy timeout, a damaged or unreadable file) raises
:class:`StoreUnavailable`: the web app answers 503 with ``Retry-After``, workers back off and
retry.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator

from mae_core.errors import InvalidParameterError, MAEError
from mae_service.jobs.errors import JobNotFoundError, JobStateError

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
DEFAULT_MAX_ATTEMPTS = 3

# Migrations, oldest first: migration i (1-based) brings the schema to version i. Each is a list
# of statements; a store applies the ones its database lacks on start and records them in
# schema_version. Append only: never edit one that shipped.
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    params           TEXT NOT NULL,             -- what was asked for (JSON), shown to people
    config           TEXT NOT NULL,             -- the resolved config a worker runs (JSON)
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    worker           TEXT,                      -- lease holder while running
    lease_expires    REAL,
    heartbeat        REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    step             INTEGER NOT NULL DEFAULT 0,
    total_steps      INTEGER,
    progress         REAL NOT NULL DEFAULT 0,
    eta_s            REAL,
    loss             REAL,
    error            TEXT,
    checkpoint       TEXT,                      -- id of the published checkpoint
    created          REAL NOT NULL,
    started          REAL,
    finished         REAL,
    updated          REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created);
CREATE TABLE IF NOT EXISTS job_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL,
    at      REAL NOT NULL,
    worker  TEXT,
    event   TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX IF NOT EXISTS job_events_by_job ON job_events (job_id, id);
CREATE TABLE IF NOT EXISTS workers (
    id        TEXT PRIMARY KEY,
    host      TEXT,
    pid       INTEGER,
    started   REAL NOT NULL,
    last_seen REAL NOT NULL,
    job_id    TEXT
);
"""
# Version 2: how many processes (GPUs) a job runs on; a worker claims only jobs that fit.
ADD_GPUS = "ALTER TABLE jobs ADD COLUMN gpus INTEGER NOT NULL DEFAULT 1"
MIGRATIONS: list[list[str]] = [[stmt.strip() for stmt in SCHEMA.split(";") if stmt.strip()],
                               [ADD_GPUS]]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreUnavailable(MAEError):
    """The job store cannot be used now (locked by another process, damaged, unreadable).

    Transient from the caller's side: retry after ``retry_after_ms`` milliseconds.
    """

    def __init__(self, message: str, retry_after_ms: int = 5000) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class LeaseLost(MAEError):
    """This worker no longer holds the job: another worker claimed it after our lease ran out."""


def new_job_id(now: float) -> str:
    """``job-YYYYmmdd-HHMMSS-xxxx`` (UTC): sortable, readable, safe as a folder and checkpoint id."""
    return f"job-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}-{secrets.token_hex(2)}"


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def _json_field(text: Any, name: str) -> dict[str, Any]:
    """A row's JSON column; one unreadable row is shown as damaged instead of failing every list
    (``{"damaged": why}``; a worker fails such a job with that message)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        return {"damaged": f"stored {name} are unreadable ({type(exc).__name__})"}
    return value if isinstance(value, dict) else {"damaged": f"stored {name} are not an object"}


@dataclass(frozen=True)
class Job:
    """One row of the job store."""

    id: str
    kind: str
    params: dict[str, Any]
    config: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    worker: str | None
    lease_expires: float | None
    heartbeat: float | None
    cancel_requested: bool
    step: int
    total_steps: int | None
    progress: float
    eta_s: float | None
    loss: float | None
    error: str | None
    checkpoint: str | None
    created: float
    started: float | None
    finished: float | None
    updated: float
    gpus: int = 1  # processes (GPUs) the job runs on, through torchrun when more than one

    @classmethod
    def from_row(cls, row: Any) -> "Job":
        data = dict(row)
        data["params"] = _json_field(data["params"], "params")
        data["config"] = _json_field(data["config"], "config")
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def lease_expired(self, now: float) -> bool:
        """Running, but its worker has not renewed the lease in time (killed or stalled)."""
        return self.state == RUNNING and (self.lease_expires or 0) < now

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """JSON-ready, with ``stale`` (lease expired) for display."""
        now = time.time() if now is None else now
        data = {k: v for k, v in self.__dict__.items() if k != "config"}
        data["stale"] = self.lease_expired(now)
        return data


JOB_COLUMNS = ", ".join(f.name for f in fields(Job))


def is_postgres_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class Lease:
    """Answer to a lease renewal: do we still hold the job, and was it cancelled?"""

    held: bool
    cancel_requested: bool = False


class JobStore:
    """The job store interface, and its embedded backend: jobs in one SQLite file (WAL). Safe to
    share between threads and processes.

    ``JobStore(target)`` opens the backend ``target`` names: a ``postgresql://`` URL opens
    :class:`~mae_service.jobs.store_postgres.PostgresJobStore`, anything else is a SQLite file.
    All semantics (leases, fencing, attempts, events) live here, written once in SQL both
    backends run; a backend supplies connections, transactions, row locking and its migrations.

    Args:
        path: the database file (created with its folder if missing), or a PostgreSQL URL.
        clock: wall-clock seconds; tests pass a fake one to expire leases without sleeping.
        busy_timeout_s: how long a call waits for another process's lock.
    """

    # dialect: SQLite's BEGIN IMMEDIATE takes the database write lock, so no row locks are needed
    BEGIN = "BEGIN IMMEDIATE"
    FOR_UPDATE = ""            # lock the rows a transaction reads before changing them
    SKIP_LOCKED = ""           # ... and let other claimers pass over rows being claimed
    TIEBREAK = "rowid"         # insertion order among jobs created in the same instant
    MIGRATIONS = MIGRATIONS

    def __new__(cls, path: str | Path, *args: Any, **kwargs: Any) -> "JobStore":
        if cls is JobStore and is_postgres_url(path):
            from mae_service.jobs.store_postgres import PostgresJobStore

            return super().__new__(PostgresJobStore)
        return super().__new__(cls)

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time,
                 busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.clock = clock
        self.busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
        self._migrate()
        with self._connect() as db:
            db.execute(f"PRAGMA user_version={len(self.MIGRATIONS)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"

    def describe(self) -> str:
        """Where the jobs are, for logs (never a password)."""
        return str(self.path)

    # ----------------------------------------------------------------- plumbing
    def _migrate(self) -> None:
        """Create the schema, or bring an older one up to date, recording each version applied."""
        with self._transaction() as db:
            self._lock_migrations(db)
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                       "applied DOUBLE PRECISION NOT NULL)")
            row = db.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
            current = row["v"] or 0
            if current > len(self.MIGRATIONS):
                raise StoreUnavailable(
                    f"the job store {self.describe()} has schema version {current}, newer than this "
                    f"MAE Lab knows ({len(self.MIGRATIONS)}); upgrade MAE Lab on this host",
                    retry_after_ms=60_000)
            for version in range(current + 1, len(self.MIGRATIONS) + 1):
                for statement in self.MIGRATIONS[version - 1]:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version, applied) VALUES (?, ?)",
                           (version, time.time()))
                log.info("job store %s: schema version %d applied", self.describe(), version)

    def _lock_migrations(self, db: Any) -> None:
        """Serialise concurrent starts (SQLite: BEGIN IMMEDIATE already does)."""

    def schema_version(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()["v"]

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        """A connection; SQLite's operational and file errors become :class:`StoreUnavailable`
        (an IntegrityError is a bug of ours and stays what it is)."""
        try:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        db.row_factory = sqlite3.Row
        try:
            yield db
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            if isinstance(exc, sqlite3.IntegrityError):
                raise
            raise self._unavailable(exc) from exc
        finally:
            db.close()

    def _unavailable(self, exc: sqlite3.Error) -> StoreUnavailable:
        log.warning("job store %s unavailable: %s", self.path, exc)
        return StoreUnavailable(f"the job store is unavailable ({exc}); try again in a few seconds")

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A write transaction (SQLite: takes the write lock first, so reads inside are current)."""
        with self._connect() as db:
            db.execute(self.BEGIN)
            try:
                yield db
            except BaseException:
                if self._can_roll_back(db):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _can_roll_back(self, db: Any) -> bool:
        return True

    @staticmethod
    def _event(db: Any, job_id: str, at: float, worker: str | None, event: str,
               detail: str | None = None) -> None:
        db.execute("INSERT INTO job_events (job_id, at, worker, event, detail) VALUES (?, ?, ?, ?, ?)",
                   (job_id, at, worker, event, detail))

    def _row(self, db: Any, job_id: str, lock: bool = False) -> Any:
        row = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"
                         f"{self.FOR_UPDATE if lock else ''}", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no job with id {job_id!r}; GET /api/jobs lists the jobs")
        return row

    # ----------------------------------------------------------------- web side
    def submit(self, kind: str, params: dict[str, Any], config: dict[str, Any],
               max_attempts: int = DEFAULT_MAX_ATTEMPTS, job_id: str | None = None,
               gpus: int = 1) -> Job:
        """Queue a new job (to run on ``gpus`` processes) and return it."""
        if max_attempts < 1 or gpus < 1:
            raise InvalidParameterError("max_attempts and gpus must be at least 1")
        now = self.clock()
        job_id = job_id or new_job_id(now)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, kind, params, config, state, max_attempts, gpus, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, kind, json.dumps(params), json.dumps(config), QUEUED, max_attempts, gpus,
                 now, now))
            self._event(db, job_id, now, None, "submitted")
            row = self._row(db, job_id)
        log.info("job %s (%s) queued", job_id, kind)
        return Job.from_row(row)

    def get(self, job_id: str) -> Job:
        with self._connect() as db:
            return Job.from_row(self._row(db, job_id))

    def list_jobs(self, limit: int = 100, state: str | None = None) -> list[Job]:
        """Jobs, newest first."""
        query, args = f"SELECT {JOB_COLUMNS} FROM jobs", list[Any]()
        if state:
            query += " WHERE state = ?"
            args.append(state)
        query += f" ORDER BY created DESC, {self.TIEBREAK} DESC LIMIT ?"
        args.append(limit)
        with self._connect() as db:
            return [Job.from_row(r) for r in db.execute(query, args).fetchall()]

    def counts(self) -> dict[str, int]:
        with self._connect() as db:
            rows = db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        return {state: 0 for state in STATES} | {r["state"]: r["n"] for r in rows}

    def events(self, job_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The job's history (submitted, claimed, requeued, ...), oldest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT at, worker, event, detail FROM job_events WHERE job_id = ? "
                "ORDER BY id DESC LIMIT ?", (job_id, limit)).fetchall()
        return [dict(r) for r in reversed(rows)]

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job now; ask the worker of a running job to stop after its step.

        Cancelling a cancelled job changes nothing; a succeeded or failed one is an error.
        """
        now = self.clock()
        with self._transaction() as db:
            row = self._row(db, job_id, lock=True)
            if row["state"] == QUEUED:
                db.execute("UPDATE jobs SET state = ?, finished = ?, updated = ? WHERE id = ?",
                           (CANCELLED, now, now, job_id))
                self._event(db, job_id, now, None, "cancelled", "cancelled before it started")
            elif row["state"] == RUNNING and not row["cancel_requested"]:
                db.execute("UPDATE jobs SET cancel_requested = 1, updated = ? WHERE id = ?",
                           (now, job_id))
                self._event(db, job_id, now, None, "cancel_requested",
                            "the worker stops after its current step and keeps the checkpoint")
            elif row["state"] in (SUCCEEDED, FAILED):
                raise JobStateError(f"job {job_id} has already {row['state']}; there is nothing to "
                                    "cancel")
            row = self._row(db, job_id)
        return Job.from_row(row)

    def retry(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again; it resumes from its last checkpoint."""
        now = self.clock()
        with self._transaction() as db:
            row = self._row(db, job_id, lock=True)
            if row["state"] not in (FAILED, CANCELLED):
                raise JobStateError(f"job {job_id} is {row['state']}; only failed or cancelled "
                                    "jobs can be retried")
            db.execute(
                "UPDATE jobs SET state = ?, attempts = 0, cancel_requested = 0, error = NULL, "
                "finished = NULL, worker = NULL, lease_expires = NULL, eta_s = NULL, updated = ? "
                "WHERE id = ?", (QUEUED, now, job_id))
            self._event(db, job_id, now, None, "retried", "queued again; resumes from its last "
                        "checkpoint")
            row = self._row(db, job_id)
        return Job.from_row(row)

    def workers(self, seen_within_s: float = 60.0) -> list[dict[str, Any]]:
        """Workers that polled the store within the last ``seen_within_s`` seconds."""
        since = self.clock() - seen_within_s
        with self._connect() as db:
            rows = db.execute("SELECT id, host, pid, started, last_seen, job_id FROM workers "
                              "WHERE last_seen >= ? ORDER BY started",
                              (since,)).fetchall()
        return [dict(r) for r in rows]

    # ----------------------------------------------------------------- worker side
    def seen(self, worker_id: str, job_id: str | None = None) -> None:
        """Record that a worker is alive (and which job it runs); the web page shows this."""
        now = self.clock()
        with self._connect() as db:
            db.execute(
                "INSERT INTO workers (id, host, pid, started, last_seen, job_id) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET last_seen = excluded.last_seen, "
                "job_id = excluded.job_id",
                (worker_id, socket.gethostname(), os.getpid(), now, now, job_id))

    def forget_worker(self, worker_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    def claim(self, worker_id: str, lease_s: float, gpus: int = 1) -> Job | None:
        """Take the oldest queued job that fits in ``gpus`` (after requeueing jobs whose lease
        expired), or None. A bigger job waiting does not hold back the smaller ones behind it."""
        now = self.clock()
        with self._transaction() as db:
            self._expire_leases(db, now)
            row = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = ? AND gpus <= ? "
                             f"ORDER BY created, {self.TIEBREAK} LIMIT 1{self.SKIP_LOCKED}",
                             (QUEUED, gpus)).fetchone()
            if row is None:
                return None
            attempt = row["attempts"] + 1
            db.execute(
                "UPDATE jobs SET state = ?, worker = ?, attempts = ?, lease_expires = ?, "
                "heartbeat = ?, eta_s = NULL, started = COALESCE(started, ?), updated = ? WHERE id = ?",
                (RUNNING, worker_id, attempt, now + lease_s, now, now, now, row["id"]))
            self._event(db, row["id"], now, worker_id, "claimed",
                        f"attempt {attempt} of {row['max_attempts']}")
            row = self._row(db, row["id"])
        return Job.from_row(row)

    def _expire_leases(self, db: Any, now: float) -> None:
        expired = db.execute(
            "SELECT id, worker, attempts, max_attempts, cancel_requested FROM jobs "
            f"WHERE state = ? AND lease_expires < ?{self.SKIP_LOCKED}", (RUNNING, now)).fetchall()
        for row in expired:
            lost = f"worker {row['worker']} stopped renewing its lease (killed or stalled)"
            if row["cancel_requested"]:
                state, error, event = CANCELLED, None, "cancelled"
                detail = f"{lost}; the job was being cancelled"
            elif row["attempts"] >= row["max_attempts"]:
                state, event = FAILED, "failed"
                error = detail = (f"{lost}; gave up after {row['attempts']} of "
                                  f"{row['max_attempts']} attempts")
            else:
                state, event = QUEUED, "lease_expired"
                error = detail = (f"{lost} during attempt {row['attempts']} of "
                                  f"{row['max_attempts']}; requeued to resume from its last checkpoint")
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, worker = NULL, lease_expires = NULL, "
                "eta_s = NULL, finished = ?, updated = ? WHERE id = ?",
                (state, error, now if state in FINAL_STATES else None, now, row["id"]))
            self._event(db, row["id"], now, row["worker"], event, detail)
            log.warning("job %s: %s", row["id"], detail)

    def holds(self, job_id: str, worker_id: str) -> bool:
        """Does ``worker_id`` still own the running job? (The fence before every run-folder write.)"""
        with self._connect() as db:
            return db.execute("SELECT 1 FROM jobs WHERE id = ? AND worker = ? AND state = ?",
                              (job_id, worker_id, RUNNING)).fetchone() is not None

    def renew(self, job_id: str, worker_id: str, lease_s: float) -> Lease:
        """Extend our lease; ``held`` is False once another worker owns the job (stop work)."""
        now = self.clock()
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE jobs SET lease_expires = ?, heartbeat = ?, updated = ? "
                "WHERE id = ? AND worker = ? AND state = ?",
                (now + lease_s, now, now, job_id, worker_id, RUNNING)).rowcount
            if not updated:
                return Lease(held=False)
            cancel = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?",
                                (job_id,)).fetchone()["cancel_requested"]
        return Lease(held=True, cancel_requested=bool(cancel))

    def report_progress(self, job_id: str, worker_id: str, *, step: int, total_steps: int,
                        loss: float | None = None, eta_s: float | None = None) -> bool:
        """Record training progress; False if we no longer hold the job."""
        now = self.clock()
        progress = min(1.0, step / total_steps) if total_steps else 0.0
        with self._connect() as db:
            return bool(db.execute(
                "UPDATE jobs SET step = ?, total_steps = ?, progress = ?, loss = ?, eta_s = ?, "
                "updated = ? WHERE id = ? AND worker = ? AND state = ?",
                (step, total_steps, progress, loss, eta_s, now, job_id, worker_id, RUNNING)).rowcount)

    def finish(self, job_id: str, worker_id: str, state: str, *, error: str | None = None,
               checkpoint: str | None = None, detail: str | None = None) -> bool:
        """End a job we hold as succeeded, failed or cancelled; False if we no longer hold it."""
        if state not in FINAL_STATES:
            raise ValueError(f"finish() needs a final state, not {state!r}")
        now = self.clock()
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE jobs SET state = ?, error = ?, checkpoint = COALESCE(?, checkpoint), "
                "worker = NULL, lease_expires = NULL, eta_s = NULL, finished = ?, updated = ?, "
                "progress = CASE WHEN ? = 'succeeded' THEN 1.0 ELSE progress END "
                "WHERE id = ? AND worker = ? AND state = ?",
                (state, error, checkpoint, now, now, state, job_id, worker_id, RUNNING)).rowcount
            if updated:
                self._event(db, job_id, now, worker_id, state, detail or error)
        return bool(updated)

    def fail_attempt(self, job_id: str, worker_id: str, error: str) -> str | None:
        """An attempt raised: requeue the job, or fail it once ``max_attempts`` are used up.

        Returns the new state, or None if we no longer hold the job.
        """
        now = self.clock()
        with self._transaction() as db:
            row = db.execute("SELECT attempts, max_attempts FROM jobs WHERE id = ? AND worker = ? "
                             f"AND state = ?{self.FOR_UPDATE}", (job_id, worker_id, RUNNING)).fetchone()
            if row is None:
                return None
            final = row["attempts"] >= row["max_attempts"]
            state = FAILED if final else QUEUED
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, worker = NULL, lease_expires = NULL, "
                "eta_s = NULL, finished = ?, updated = ? WHERE id = ?",
                (state, error, now if final else None, now, job_id))
            self._event(db, job_id, now, worker_id, "failed" if final else "attempt_failed",
                        f"attempt {row['attempts']} of {row['max_attempts']}: {error}")
        return state

    def requeue(self, job_id: str, worker_id: str, reason: str) -> bool:
        """Give a job back (the worker is shutting down); the attempt does not count."""
        now = self.clock()
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE jobs SET state = ?, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, worker = NULL, "
                "lease_expires = NULL, eta_s = NULL, updated = ? WHERE id = ? AND worker = ? AND state = ?",
                (QUEUED, now, job_id, worker_id, RUNNING)).rowcount
            if updated:
                self._event(db, job_id, now, worker_id, "requeued", reason)
        return bool(updated)
