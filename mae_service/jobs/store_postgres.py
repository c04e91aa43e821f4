"""The PostgreSQL backend of the job store, for workers on many hosts (``MAE_JOBS_URL``).

Same semantics as the SQLite store, from the same SQL (:class:`~mae_service.jobs.store.JobStore`):
only connections, transactions and row locks differ. SQLite serialises writers with one
database lock; here a claim locks the row it takes with ``SELECT ... FOR UPDATE SKIP LOCKED``,
so any number of workers claim at once, each passing over the rows the others are taking.
Transactions that change a job (cancel, retry, a failed attempt) lock its row first.

Each thread keeps one connection (reopened after a fork or a lost connection); a server that
cannot be reached, a lock held past ``busy_timeout_s`` or a dropped connection raises
:class:`~mae_service.jobs.store.StoreUnavailable`, as a locked SQLite file does.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import time

from mae_service.jobs.store import ADD_GPUS, JobStore, StoreUnavailable

log = logging.getLogger(__name__)

# Version 1: today's SQLite schema in PostgreSQL types (times in float8 seconds, JSON as text,
# an identity column for insertion order where SQLite has rowid).
MIGRATIONS: list[list[str]] = [[
    """CREATE TABLE IF NOT EXISTS jobs (
        seq              BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id               TEXT PRIMARY KEY,
        kind             TEXT NOT NULL,
        params           TEXT NOT NULL,
        config           TEXT NOT NULL,
        state            TEXT NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        max_attempts     INTEGER NOT NULL,
        worker           TEXT,
        lease_expires    DOUBLE PRECISION,
        heartbeat        DOUBLE PRECISION,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        step             INTEGER NOT NULL DEFAULT 0,
        total_steps      INTEGER,
        progress         DOUBLE PRECISION NOT NULL DEFAULT 0,
        eta_s            DOUBLE PRECISION,
        loss             DOUBLE PRECISION,
        error            TEXT,
        checkpoint       TEXT,
        created          DOUBLE PRECISION NOT NULL,
        started          DOUBLE PRECISION,
        finished         DOUBLE PRECISION,
        updated          DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created, seq)",
    """CREATE TABLE IF NOT EXISTS job_events (
        id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id  TEXT NOT NULL,
        at      DOUBLE PRECISION NOT NULL,
        worker  TEXT,
        event   TEXT NOT NULL,
        detail  TEXT)""",
    "CREATE INDEX IF NOT EXISTS job_events_by_job ON job_events (job_id, id)",
    """CREATE TABLE IF NOT EXISTS workers (
        id        TEXT PRIMARY KEY,
        host      TEXT,
        pid       INTEGER,
        started   DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        job_id    TEXT)""",
], [ADD_GPUS]]  # version 2: the job's gpus (the same statement as SQLite's)
MIGRATION_LOCK = 0x4D41454A  # "MAEJ": the advisory lock concurrent starts queue on

_inherited: list[Any] = []  # connections a forked child found: kept, so closing never hits the parent's


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


class _Connection:
    """A psycopg connection that takes the store's ``?`` placeholders."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, query: str, args: Any = None) -> Any:
        return self.conn.execute(query.replace("?", "%s"), args)


class PostgresJobStore(JobStore):
    """Jobs in a PostgreSQL database, shared by web apps and workers on any number of hosts.

    Args:
        url: ``postgresql://user:password@host:port/database`` (libpq syntax; ``?host=/socket/dir``
            for a unix socket).
        clock, busy_timeout_s: as for the SQLite store; ``busy_timeout_s`` is the lock timeout
            and the connect timeout.
    """

    BEGIN = "BEGIN"
    FOR_UPDATE = " FOR UPDATE"
    SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    TIEBREAK = "seq"
    MIGRATIONS = MIGRATIONS

    def __init__(self, path: str, clock: Callable[[], float] = time.time,  # type: ignore[override]
                 busy_timeout_s: float = 30.0) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - the `postgres` extra is missing
            raise StoreUnavailable("MAE_JOBS_URL names a PostgreSQL store but psycopg is not "
                                   "installed: pip install 'mae-lab[postgres]'") from exc
        self._psycopg = psycopg
        self.url = str(path)
        self.clock = clock
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._migrate()

    def describe(self) -> str:
        return redact(self.url)

    def _lock_migrations(self, db: Any) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    # ----------------------------------------------------------------- connections
    def _open(self) -> Any:
        from psycopg.rows import dict_row

        conn = self._psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                     connect_timeout=max(1, round(self.busy_timeout_s)),
                                     application_name="mae-lab")
        conn.mae_pid = os.getpid()
        conn.mae_lock_timeout = None
        return conn

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.mae_pid != os.getpid():
            _inherited.append(conn)  # the parent's socket: never close it from here
            conn = None
        if conn is None or conn.closed:
            conn = self._local.conn = self._open()
        timeout_ms = max(1, round(self.busy_timeout_s * 1000))
        if conn.mae_lock_timeout != timeout_ms:
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{timeout_ms}ms",))
            conn.mae_lock_timeout = timeout_ms
        return conn

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        """This thread's connection; connection and lock errors become StoreUnavailable."""
        errors = (self._psycopg.OperationalError, self._psycopg.InterfaceError)
        try:
            conn = self._connection()
        except errors as exc:
            self._local.conn = None
            raise self._unavailable(exc) from exc
        try:
            yield _Connection(conn)
        except errors as exc:
            if conn.closed or conn.broken:
                self._local.conn = None
            elif conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            raise self._unavailable(exc) from exc

    def _can_roll_back(self, db: Any) -> bool:
        return not db.conn.closed  # a dropped connection has nothing left to roll back

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("job store %s unavailable: %s", self.describe(), message)
        return StoreUnavailable(f"the job store is unavailable ({message}); try again in a few "
                                "seconds")

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.mae_pid == os.getpid():
            conn.close()
        self._local.conn = None
