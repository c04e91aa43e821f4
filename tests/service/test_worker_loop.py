"""The worker loop in-process, on both job-store backends (SQLite, PostgreSQL): success and
publishing, cancel, graceful stop and resume, retries, permanent failures, and fencing after a
lost lease."""

from __future__ import annotations

import threading
import time

import pytest

from mae_core import list_checkpoints, load_model
import sqlite3

from mae_service.jobs import DataDir, JobStore, Worker, submit_pretrain
from mae_core.runs import RunFolder
from mae_core.train.state import load_training_state
from support.jobs_helpers import job_request, wait_until
from support.train_helpers import make_images


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    make_images(root / "shapes", count=32, size=40)
    return [root]


@pytest.fixture
def data(tmp_path) -> DataDir:
    return DataDir(tmp_path / "data").ensure()


@pytest.fixture
def store(make_store) -> JobStore:
    return make_store()


@pytest.fixture
def make_worker(data, store_url):
    """``make_worker(**kw)``: a Worker on ``data`` and the store under test."""
    return lambda **kw: Worker(data, jobs_url=store_url, **kw)


def steps_in_metrics(run_dir) -> list[int]:
    return [r["step"] for r in RunFolder(run_dir).read_metrics()]


def stop_when(condition, action) -> threading.Thread:
    """Run ``action`` from another thread as soon as ``condition`` holds (the worker keeps the
    main thread, as under `mae worker`)."""
    def watch():
        wait_until(condition, timeout=60, what="the job to get going")
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_job_succeeds_and_its_model_is_published(store, data, make_worker, store_url, roots):
    job = submit_pretrain(store, roots, job_request("shapes", epochs=3, snapshot_every=4))
    assert make_worker(lease_s=5, poll_interval=0.1).run(exit_when_idle=True) == 1
    done = store.get(job.id)
    assert done.state == "succeeded" and done.checkpoint == job.id and done.error is None
    assert done.step == done.total_steps == 12 and done.progress == 1.0 and done.loss is not None
    assert [e["event"] for e in store.events(job.id)] == ["submitted", "claimed", "succeeded"]

    infos = {i.id: i for i in list_checkpoints(data.checkpoints)}
    assert infos[job.id].can_reconstruct and not infos[job.id].error
    model = load_model(data.checkpoints / f"{job.id}.safetensors")
    assert model.card["job"]["id"] == job.id and model.card["job"]["params"]["dataset"] == "shapes"
    assert model.card["training"]["steps"] == 12

    run = data.run_dir(job.id)
    assert steps_in_metrics(run) == list(range(1, 13))
    assert len(RunFolder(run).snapshots()) >= 3
    assert "attempt 1 of 3" in RunFolder(run).log_path.read_text()
    assert store.workers() == []  # the worker signed off


def test_cancel_stops_the_run_and_keeps_its_checkpoint_then_retry_resumes(store, data, make_worker, store_url, roots):
    job = submit_pretrain(store, roots, job_request("shapes", epochs=60, ckpt_every_steps=1000))
    worker = make_worker(lease_s=2, poll_interval=0.1)
    cancelled_at = {}

    def cancel():
        cancelled_at["t"] = time.monotonic()
        store.cancel(job.id)

    stop_when(lambda: store.get(job.id).step >= 5, cancel)
    assert worker.run_one() == "cancelled"
    stopped_after = time.monotonic() - cancelled_at["t"]
    j = store.get(job.id)
    assert j.state == "cancelled" and 5 <= j.step < 240 and j.finished is not None
    assert stopped_after < 5, stopped_after
    ckpt = RunFolder(data.run_dir(job.id)).latest_checkpoint()
    assert ckpt is not None and load_training_state(ckpt)["step"] == j.step
    assert not (data.checkpoints / f"{job.id}.safetensors").exists()

    store.retry(job.id)
    assert worker.run_one() == "succeeded"
    log = RunFolder(data.run_dir(job.id)).log_path.read_text()
    assert f"at step {j.step}" in log and "resumed from" in log
    assert steps_in_metrics(data.run_dir(job.id)) == list(range(1, 241))


def test_stop_request_checkpoints_requeues_and_the_next_worker_resumes(store, data, make_worker, store_url, roots):
    job = submit_pretrain(store, roots, job_request("shapes", epochs=40, ckpt_every_steps=1000))
    first = make_worker(lease_s=2, poll_interval=0.1, worker_id="first")
    stop_when(lambda: store.get(job.id).step >= 6, first.request_stop)
    assert first.run() == 1  # ran one job, then left the loop because it was asked to stop
    j = store.get(job.id)
    assert j.state == "queued" and j.attempts == 0 and j.worker is None
    saved = load_training_state(RunFolder(data.run_dir(job.id)).latest_checkpoint())["step"]
    assert saved == j.step >= 6
    assert store.events(job.id)[-1]["event"] == "requeued"

    second = make_worker(lease_s=2, poll_interval=0.1, worker_id="second")
    assert second.run_one() == "succeeded"
    log = RunFolder(data.run_dir(job.id)).log_path.read_text()
    assert f"at step {saved}" in log
    assert store.get(job.id).attempts == 1
    assert steps_in_metrics(data.run_dir(job.id)) == list(range(1, 161))


def test_failing_attempts_are_retried_then_the_job_fails(store, data, make_worker, store_url, roots, tmp_path):
    doomed = tmp_path / "doomed-root"
    make_images(doomed / "gone", count=16, size=40)
    job = submit_pretrain(store, [doomed], job_request("gone", epochs=1), max_attempts=2)
    for image in (doomed / "gone").iterdir():
        image.unlink()
    (doomed / "gone").rmdir()
    assert make_worker(lease_s=2, poll_interval=0.05).run(exit_when_idle=True) == 2
    j = store.get(job.id)
    assert j.state == "failed" and j.attempts == 2
    assert "TrainingError" in j.error and "does not exist" in j.error
    assert [e["event"] for e in store.events(job.id)] == [
        "submitted", "claimed", "attempt_failed", "claimed", "failed"]


def test_a_broken_config_fails_at_once(store, data, make_worker, store_url):
    job = store.submit("pretrain", {}, {"data": {"path": "x"}, "no_such_field": 1})
    assert make_worker(lease_s=2).run_one() == "failed"
    j = store.get(job.id)
    assert j.attempts == 1 and "invalid job" in j.error and "no_such_field" in j.error
    other = store.submit("evaluate", {}, {})
    assert make_worker(lease_s=2).run_one() == "failed"
    assert "unknown job kind 'evaluate'" in store.get(other.id).error


def test_a_worker_that_lost_its_lease_cannot_record_a_result(store, data, make_worker, store_url, roots):
    job = submit_pretrain(store, roots, job_request("shapes", epochs=8))
    # a worker that never renews: its lease runs out while it trains
    stale = make_worker(lease_s=0.3, heartbeat_s=3600, worker_id="stale")
    other = JobStore(store_url)
    stop_when(lambda: store.get(job.id).step >= 3 and time.time() > store.get(job.id).lease_expires,
              lambda: other.claim("other", lease_s=60))
    assert stale.run_one() == "lost"
    j = store.get(job.id)
    assert j.state == "running" and j.worker == "other" and j.attempts == 2


def _files(run) -> dict:
    return {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_a_stalled_worker_whose_job_was_taken_over_writes_nothing_more(store, data, make_worker, store_url, roots):
    """Issue 15 #8: a worker stalls past its lease, another claims the job, the stalled one
    wakes up. Every write to the run folder is fenced by the lease: it abandons the job
    without appending metrics, moving `latest`, writing summary.json or exporting."""
    job = submit_pretrain(store, roots, job_request("shapes", epochs=8, ckpt_every_steps=2))
    stale = make_worker(lease_s=0.3, heartbeat_s=3600, worker_id="stale")  # never renews
    other = JobStore(store_url)
    run = RunFolder(data.run_dir(job.id))
    at_claim: dict = {}
    report = stale.store.report_progress

    def report_then_get_taken_over(job_id, worker_id, **progress):
        # the stale worker "stalls" after logging a step: its lease runs out, another claims
        if not at_claim and progress["step"] >= 5 and run.latest_checkpoint() is not None:
            wait_until(lambda: time.time() > store.get(job_id).lease_expires, 10, "lease expiry")
            assert other.claim("other", lease_s=60).id == job_id
            at_claim.update(files=_files(run.path))
        return report(job_id, worker_id, **progress)

    stale.store.report_progress = report_then_get_taken_over
    assert stale.run_one() == "lost"
    assert at_claim, "the takeover never happened"
    assert _files(run.path) == at_claim["files"]  # not one byte written after the takeover
    assert run.read_summary() is None and not run.export_path.exists()
    assert not (data.checkpoints / f"{job.id}.safetensors").exists()
    j = store.get(job.id)
    assert j.state == "running" and j.worker == "other" and j.attempts == 2
    assert [e["event"] for e in store.events(job.id)][-1] == "claimed"


def test_the_worker_backs_off_while_the_store_is_locked_and_carries_on(store, data, make_worker, store_url, roots):
    """Issue 15 #9: a long write lock held by another process makes every store call fail;
    the worker logs, backs off and retries, then runs the job once the lock is gone."""
    job = submit_pretrain(store, roots, job_request("shapes", epochs=1))
    worker = make_worker(lease_s=5, poll_interval=0.05, retry_s=0.05, max_retry_s=0.2)
    worker.store.busy_timeout_s = 0.1
    if store_url.startswith("postgresql://"):  # a client holding a long write lock
        import psycopg

        lock = psycopg.connect(store_url, autocommit=True)
        lock.execute("BEGIN")
        lock.execute("LOCK TABLE jobs, workers IN EXCLUSIVE MODE")  # reads go on
    else:
        lock = sqlite3.connect(store.path, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
    ran = {}
    thread = threading.Thread(target=lambda: ran.update(n=worker.run(exit_when_idle=True)),
                              daemon=True)
    thread.start()
    try:
        wait_until(lambda: worker.store_errors >= 3, 60, "the worker to hit the lock a few times")
        assert thread.is_alive() and store.get(job.id).state == "queued"
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    thread.join(120)
    assert ran == {"n": 1} and store.get(job.id).state == "succeeded"
    assert worker.store_errors == 0
