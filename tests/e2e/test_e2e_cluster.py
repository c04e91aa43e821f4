"""The two-host story on one machine: two `mae worker` processes, each in its own working
directory, on one PostgreSQL job store and one shared data folder (runs, checkpoints), as
workers on two hosts with the folder on NFS. One is killed -9 mid-job; the other resumes it
from its last checkpoint."""

from __future__ import annotations

import signal
import time

import pytest

from mae_core.runs import RunFolder
from mae_core.train.state import latest_checkpoint, load_training_state
from mae_service.jobs import JobStore, submit_pretrain
from support.jobs_helpers import job_request, start_mae, stop, subprocess_env, wait_until
from support.train_helpers import make_images

pytestmark = pytest.mark.slow


def test_a_worker_on_another_host_resumes_a_job_after_kill_9(tmp_path, postgres_server):
    url = postgres_server.new_database()
    shared, images, logs = tmp_path / "shared", tmp_path / "images", tmp_path / "logs"
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    for folder in (logs, host_a, host_b):
        folder.mkdir()
    make_images(images / "shapes", count=32, size=40)
    store = JobStore(url)
    job = submit_pretrain(store, [images], job_request("shapes", epochs=60, ckpt_every_steps=10))

    def worker(name: str, cwd, **env: str):
        command = ["worker", "--data-dir", str(shared), "--lease", "2", "--poll-interval", "0.2",
                   "--worker-id", name]
        return start_mae(command, logs / f"{name}.log", env=subprocess_env(**env), cwd=cwd)

    first = worker("host-a", host_a, MAE_JOBS_URL=url)  # the URL from the environment ...
    try:
        wait_until(lambda: store.get(job.id).step >= 25, 120, "25 steps on host-a")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        saved = load_training_state(latest_checkpoint(shared / "runs" / job.id / "checkpoints"))["step"]
        assert store.get(job.id).state == "running" and saved >= 20
        wait_until(lambda: store.get(job.id).lease_expired(time.time()), 30, "lease expiry")

        second = start_mae(["worker", "--data-dir", str(shared), "--jobs-url", url,  # ... or the flag
                            "--lease", "2", "--poll-interval", "0.2", "--worker-id", "host-b"],
                           logs / "host-b.log", cwd=host_b)
        try:
            wait_until(lambda: store.get(job.id).state == "succeeded", 180, "host-b to finish the job",
                       interval=0.1)
        finally:
            stop(second)
    finally:
        stop(first)
    done = store.get(job.id)
    assert done.attempts == 2 and done.step == 240 and done.checkpoint == job.id
    assert [e["event"] for e in store.events(job.id) if e["worker"]] == [
        "claimed", "lease_expired", "claimed", "succeeded"]
    assert [e["worker"] for e in store.events(job.id) if e["event"] == "claimed"] == ["host-a", "host-b"]
    assert f"at step {saved}" in (logs / "host-b.log").read_text()
    steps = [r["step"] for r in RunFolder(shared / "runs" / job.id).read_metrics()]
    assert steps == list(range(1, 241))  # resumed, not restarted: every step logged once
    assert (shared / "checkpoints" / f"{job.id}.safetensors").is_file()
    assert not (shared / "jobs" / "jobs.sqlite").exists()  # no SQLite store beside the shared folder
    assert list(host_a.iterdir()) == list(host_b.iterdir()) == []  # nothing lives on a host
