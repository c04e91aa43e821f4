"""A worker asked to stop while its torchrun group is still starting (no rank has trained, so
none reports a result) requeues the job as after any stop: no failed attempt, no error."""

from __future__ import annotations

import threading

from mae_service.jobs import DataDir, JobStore, Worker, submit_pretrain
from support.jobs_helpers import job_request, wait_until
from support.train_helpers import make_images


def test_a_stop_during_torchrun_start_up_requeues_the_job(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    images = tmp_path / "images"
    make_images(images / "shapes", count=16, size=40)
    data = DataDir(tmp_path / "data").ensure()
    store = JobStore(data.store)
    job = submit_pretrain(store, [images], job_request("shapes", epochs=2, gpus=2))
    worker = Worker(data, gpus=2, lease_s=5, poll_interval=0.1)

    def stop_once_claimed() -> None:  # torchrun takes seconds to import torch: still starting
        wait_until(lambda: store.get(job.id).state == "running", 60, "the claim", interval=0.01)
        worker.request_stop()

    stopper = threading.Thread(target=stop_once_claimed)
    stopper.start()
    assert worker.run(exit_when_idle=True) == 1
    stopper.join()
    requeued = store.get(job.id)
    assert requeued.state == "queued" and requeued.error is None, requeued
    assert requeued.step == 0
    assert [e["event"] for e in store.events(job.id) if e["worker"]] == ["claimed", "requeued"]
