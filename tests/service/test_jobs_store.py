"""The job store on both backends (SQLite file, real PostgreSQL server): claims, leases,
fencing, cancel/retry, concurrency across processes, unavailability, schema migrations."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import pytest

from mae_service.jobs import JobNotFoundError, JobStateError, JobStore
from mae_service.jobs.store import StoreUnavailable


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(make_store, clock) -> JobStore:
    return make_store(clock=clock)


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql://")


def submit(store: JobStore, n: int = 1, **kw):
    return [store.submit("pretrain", {"dataset": f"d{i}"}, {"epochs": 1}, **kw) for i in range(n)]


def test_submit_get_list_and_wal(store, clock, store_url):
    a, = submit(store)
    clock.now += 1
    b, = submit(store)
    assert a.state == "queued" and a.attempts == 0 and a.params == {"dataset": "d0"}
    assert store.get(a.id).config == {"epochs": 1}
    assert [j.id for j in store.list_jobs()] == [b.id, a.id]  # newest first
    assert store.counts()["queued"] == 2
    assert [e["event"] for e in store.events(a.id)] == ["submitted"]
    if not is_postgres(store_url):
        with sqlite3.connect(store.path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(JobNotFoundError, match="no job with id 'nope'"):
        store.get("nope")


def test_claim_takes_oldest_once(store, clock):
    first, second = submit(store, 2)
    job = store.claim("w1", lease_s=10)
    assert job.id == first.id and job.state == "running" and job.worker == "w1" and job.attempts == 1
    assert job.lease_expires == clock.now + 10 and job.started == clock.now
    assert store.claim("w2", lease_s=10).id == second.id
    assert store.claim("w3", lease_s=10) is None


def test_a_worker_claims_only_jobs_that_fit_its_gpus(store, clock):
    big, = submit(store, gpus=4)
    clock.now += 1
    small, = submit(store)
    assert store.get(big.id).gpus == 4 and small.gpus == 1
    assert store.claim("one-gpu", lease_s=10).id == small.id  # the bigger job does not block it
    assert store.claim("two-gpus", lease_s=10, gpus=2) is None
    assert store.claim("four-gpus", lease_s=10, gpus=4).id == big.id
    with pytest.raises(ValueError, match="gpus must be at least 1"):
        submit(store, gpus=0)


def test_a_version_1_database_gains_the_gpus_column(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the schema as version 1 shipped it, with one job
        db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied REAL)")
        for statement in JobStore.MIGRATIONS[0]:
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (1, 0)")
        db.execute("INSERT INTO jobs (id, kind, params, config, state, max_attempts, created, "
                   "updated) VALUES ('old', 'pretrain', '{}', '{}', 'queued', 3, 0, 0)")
    store = JobStore(path)
    assert store.schema_version() == 2 and store.get("old").gpus == 1
    assert store.claim("w", lease_s=10).id == "old"


def test_renew_progress_and_finish_are_fenced(store, clock):
    job, = submit(store)
    store.claim("w1", 10)
    assert store.renew(job.id, "w1", 10).held
    assert not store.renew(job.id, "intruder", 10).held
    assert store.report_progress(job.id, "w1", step=5, total_steps=20, loss=0.5, eta_s=3.0)
    assert not store.report_progress(job.id, "intruder", step=9, total_steps=20)
    j = store.get(job.id)
    assert (j.step, j.total_steps, j.progress, j.loss, j.eta_s) == (5, 20, 0.25, 0.5, 3.0)
    assert not store.finish(job.id, "intruder", "succeeded")
    assert store.finish(job.id, "w1", "succeeded", checkpoint=job.id)
    j = store.get(job.id)
    assert j.state == "succeeded" and j.progress == 1.0 and j.checkpoint == job.id and j.worker is None
    assert not store.finish(job.id, "w1", "failed")  # already final


def test_expired_lease_is_claimed_again_and_the_old_worker_is_fenced_off(store, clock):
    job, = submit(store)
    store.claim("w1", lease_s=5)
    clock.now += 4
    assert store.claim("w2", lease_s=5) is None  # lease still valid
    assert not store.get(job.id).lease_expired(clock.now)
    clock.now += 2
    assert store.get(job.id).lease_expired(clock.now)
    again = store.claim("w2", lease_s=5)
    assert again.id == job.id and again.worker == "w2" and again.attempts == 2
    assert "w1 stopped renewing its lease" in again.error
    assert [e["event"] for e in store.events(job.id)] == ["submitted", "claimed", "lease_expired", "claimed"]
    assert not store.renew(job.id, "w1", 5).held
    assert not store.finish(job.id, "w1", "succeeded")
    assert store.finish(job.id, "w2", "succeeded")
    assert store.get(job.id).error is None


def test_job_fails_after_max_attempts_of_lost_workers(store, clock):
    job, = submit(store, max_attempts=2)
    for worker in ("w1", "w2"):
        assert store.claim(worker, lease_s=1).id == job.id
        clock.now += 2
    assert store.claim("w3", lease_s=1) is None
    j = store.get(job.id)
    assert j.state == "failed" and j.attempts == 2 and j.finished == clock.now
    assert "gave up after 2 of 2 attempts" in j.error


def test_fail_attempt_requeues_until_max_attempts(store):
    job, = submit(store, max_attempts=2)
    store.claim("w1", 10)
    assert store.fail_attempt(job.id, "w1", "OSError: disk full") == "queued"
    assert store.get(job.id).error == "OSError: disk full"
    store.claim("w1", 10)
    assert store.fail_attempt(job.id, "w1", "OSError: disk full") == "failed"
    assert store.get(job.id).state == "failed"
    assert store.fail_attempt(job.id, "w1", "again") is None


def test_graceful_requeue_does_not_use_an_attempt(store):
    job, = submit(store, max_attempts=1)
    store.claim("w1", 10)
    assert store.requeue(job.id, "w1", "shutting down")
    j = store.get(job.id)
    assert j.state == "queued" and j.attempts == 0
    assert store.claim("w2", 10).attempts == 1


def test_cancel(store, clock):
    queued, running, done = submit(store, 3)
    assert store.cancel(queued.id).state == "cancelled"
    assert store.cancel(queued.id).state == "cancelled"  # idempotent
    store.claim("w", 10)  # queued.id is cancelled, so this takes `running`
    j = store.cancel(running.id)
    assert j.state == "running" and j.cancel_requested
    assert store.renew(running.id, "w", 10).cancel_requested
    store.claim("w2", 10)
    store.finish(done.id, "w2", "succeeded")
    with pytest.raises(JobStateError, match="already succeeded"):
        store.cancel(done.id)
    with pytest.raises(JobNotFoundError):
        store.cancel("nope")


def test_cancelled_job_whose_worker_died_ends_cancelled(store, clock):
    job, = submit(store)
    store.claim("w1", 1)
    store.cancel(job.id)
    clock.now += 5
    assert store.claim("w2", 1) is None
    assert store.get(job.id).state == "cancelled"


def test_retry(store):
    job, = submit(store, max_attempts=1)
    with pytest.raises(JobStateError, match="only failed or cancelled"):
        store.retry(job.id)
    store.claim("w", 10)
    store.fail_attempt(job.id, "w", "boom")
    j = store.retry(job.id)
    assert j.state == "queued" and j.attempts == 0 and j.error is None and j.finished is None
    assert store.claim("w", 10).id == job.id


def test_workers_presence(store, clock):
    store.seen("w1")
    store.seen("w2", "job-x")
    assert {w["id"]: w["job_id"] for w in store.workers(30)} == {"w1": None, "w2": "job-x"}
    clock.now += 60
    store.seen("w2")
    assert [w["id"] for w in store.workers(30)] == ["w2"]
    store.forget_worker("w2")
    assert store.workers(30) == []


def _claim_all(path: str, worker: str, out) -> None:
    store = JobStore(path)
    claimed = []
    while (job := store.claim(worker, lease_s=60)) is not None:
        claimed.append(job.id)
    out.put(claimed)


def test_concurrent_claims_from_processes_never_share_a_job(store_url):
    path = store_url
    store = JobStore(path)
    ids = {j.id for j in submit(store, 40)}
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(str(path), f"w{i}", out)) for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    claimed = Counter(job_id for r in results for job_id in r)
    assert set(claimed) == ids and set(claimed.values()) == {1}
    assert all(j.state == "running" and j.attempts == 1 for j in store.list_jobs())


def test_concurrent_claims_from_threads_never_share_a_job(make_store):
    store = make_store()
    ids = {j.id for j in submit(store, 30)}
    results: list[list[str]] = [[] for _ in range(6)]

    def claim(i: int) -> None:
        while (job := store.claim(f"t{i}", 60)) is not None:
            results[i].append(job.id)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = Counter(job_id for r in results for job_id in r)
    assert set(claimed) == ids and set(claimed.values()) == {1}


def test_store_file_is_created_with_its_folder(tmp_path):
    path = tmp_path / "a" / "b" / "jobs.sqlite"
    JobStore(path)
    assert Path(path).is_file()


# ---------------------------------------------------------------------- store unavailable
@pytest.fixture
def locked(tmp_path):
    """A store (0.1 s busy timeout) while another process holds a long write lock on its file
    (as during the 40 s lock of the report)."""
    store = JobStore(tmp_path / "jobs" / "jobs.sqlite", busy_timeout_s=0.1)
    db = sqlite3.connect(store.path, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    yield store
    db.execute("ROLLBACK")
    db.close()


def test_holds_is_the_lease_fence(store, clock):
    a, = submit(store)
    store.claim("w1", lease_s=10)
    assert store.holds(a.id, "w1") and not store.holds(a.id, "w2")
    clock.now += 11
    assert store.holds(a.id, "w1")  # expired but not taken: still ours, nobody else writes
    store.claim("w2", lease_s=10)
    assert not store.holds(a.id, "w1") and store.holds(a.id, "w2")


def test_a_locked_store_raises_store_unavailable(locked):
    with pytest.raises(StoreUnavailable, match="unavailable.*locked") as info:
        locked.submit("pretrain", {}, {})
    assert info.value.retry_after_ms >= 1000
    with pytest.raises(StoreUnavailable):
        locked.claim("w1", lease_s=5)
    assert locked.list_jobs() == []  # reads still work in WAL mode


def test_a_damaged_store_file_raises_store_unavailable(tmp_path):
    path = tmp_path / "jobs.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable, match="not a database"):
        JobStore(path)


def test_the_api_answers_503_with_retry_after_while_the_store_is_unavailable(tmp_path, locked):
    from fastapi.testclient import TestClient

    from app import Settings, create_app
    from support.train_helpers import make_images

    roots = tmp_path / "images"
    make_images(roots / "shapes", count=8, size=40)
    data = tmp_path / "data"
    (data / "jobs").mkdir(parents=True)
    (data / "jobs" / "jobs.sqlite").write_bytes(b"damaged" * 500)
    settings = Settings(data_dir=data, checkpoint_dir=tmp_path / "none", data_roots=[roots])
    with TestClient(create_app(settings)) as client:
        resp = client.get("/api/jobs")  # a damaged file
        assert resp.status_code == 503 and resp.headers["retry-after"] == "5", resp.text
        assert resp.json()["error"] == "store_unavailable" and "job store" in resp.json()["message"]
        client.app.state.job_store = locked  # a store another process holds locked
        resp = client.post("/api/jobs", json={"dataset": "shapes", "epochs": 1, "batch_size": 4})
        assert resp.status_code == 503 and resp.headers["retry-after"] == "5", resp.text
        assert client.get("/api/jobs").status_code == 200  # reads go on meanwhile


# ---------------------------------------------------------------------- PostgreSQL specifics
def test_schema_versions_are_recorded_and_reopening_migrates_nothing(store_url):
    store = JobStore(store_url)
    assert store.schema_version() == len(store.MIGRATIONS) >= 1
    job, = submit(store)
    again = JobStore(store_url)  # a second process starting on the same database
    assert again.schema_version() == store.schema_version() and again.get(job.id).state == "queued"


def test_a_store_newer_than_the_code_is_refused(store_url):
    store = JobStore(store_url)
    with store._transaction() as db:
        db.execute("INSERT INTO schema_version (version, applied) VALUES (?, ?)", (99, 0.0))
    with pytest.raises(StoreUnavailable, match="schema version 99, newer than this MAE Lab"):
        JobStore(store_url)


def test_postgres_claims_skip_rows_another_claim_holds(postgres_server):
    import psycopg

    url = postgres_server.new_database()
    store = JobStore(url)
    first, second = submit(store, 2)
    with psycopg.connect(url) as other:  # another worker, mid-claim of the oldest job
        other.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (first.id,))
        assert store.claim("w1", lease_s=10).id == second.id  # passes over it, never waits
        assert store.claim("w2", lease_s=10) is None
    assert store.claim("w2", lease_s=10).id == first.id


def test_postgres_locked_or_unreachable_raises_store_unavailable(postgres_server):
    import psycopg

    url = postgres_server.new_database()
    store = JobStore(url, busy_timeout_s=0.2)
    with psycopg.connect(url) as other:  # a long lock held by another client
        other.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(StoreUnavailable, match="unavailable.*lock timeout"):
            store.submit("pretrain", {}, {})
        with pytest.raises(StoreUnavailable):
            store.claim("w1", lease_s=5)
    assert store.submit("pretrain", {}, {}).state == "queued"  # the same store carries on
    dead = url.replace(f"port={postgres_server.port}", "port=1")
    with pytest.raises(StoreUnavailable, match="unavailable"):
        JobStore(dead, busy_timeout_s=1)
