"""Crashes during training: a kill in the middle of a checkpoint write never leaves a corrupt
``latest``; a corrupted run folder fails its job with a message and the worker carries on."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from mae_core.errors import TrainingError
from mae_core.train.state import LATEST, latest_checkpoint, load_training_state, save_training_state

NUMEL = 1_000_000  # 4 MB per checkpoint: each write takes a while, so kills land inside writes
KILLS = 30


def _writer(folder: str, started) -> None:
    """Write checkpoints forever, as a trainer resuming from ``latest`` would; ``started`` counts
    the writes begun. The first write re-saves the step ``latest`` names (the same file name):
    the case a non-atomic write turns into a corrupt ``latest``."""
    folder_path = Path(folder)
    latest = latest_checkpoint(folder_path)
    step = int(load_training_state(latest)["step"]) if latest else 0
    while True:
        state = {"model": {"w": torch.full((NUMEL,), float(step))}, "step": step}
        with started.get_lock():
            started.value += 1
        save_training_state(folder_path, step, state, keep_last=2)
        step += 1


def _check_latest(folder: Path) -> int | None:
    latest = latest_checkpoint(folder)
    if latest is None:
        return None
    state = load_training_state(latest)
    assert latest.name == f"ckpt_{state['step']:08d}.pt"
    assert torch.all(state["model"]["w"] == float(state["step"]))
    return int(state["step"])


def _wait_for(value, at_least: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while value.value < at_least:
        assert time.monotonic() < deadline, "the writer never got going"
        time.sleep(0.001)


def test_killing_the_writer_at_random_points_never_corrupts_latest(tmp_path):
    """SIGKILL the writer at a random moment inside one of its first writes, many times;
    after each kill ``latest`` must load and hold the step it names."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "mae_core.train.state"])
    rng = random.Random(1234)
    folder = tmp_path / "checkpoints"

    def start():
        started = ctx.Value("i", 0)
        proc = ctx.Process(target=_writer, args=(str(folder), started), daemon=True)
        proc.start()
        return proc, started

    proc, started = start()  # calibrate: how long one write takes here
    _wait_for(started, 2)
    t0 = time.monotonic()
    time.sleep(0.5)
    write_s = (time.monotonic() - t0) / max(1, started.value - 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    steps = [_check_latest(folder)]
    for i in range(KILLS):
        proc, started = start()
        _wait_for(started, 1 if i % 2 else rng.randint(1, 4))  # often the same-name re-save
        time.sleep(rng.uniform(0.0, 1.2 * write_s))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        steps.append(_check_latest(folder))
    reached = [s for s in steps if s is not None]
    assert reached and max(reached) >= 5, f"the writer hardly wrote anything: {steps}"
    assert reached == sorted(reached), "latest went backwards"
    leftovers = list(folder.glob(".ckpt_*.tmp")) + list(folder.glob(f".{LATEST}.*.tmp"))
    assert leftovers, "no kill landed inside a write; the test did not test anything"


def test_a_crash_inside_the_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """Deterministic companion: the serializer dies half-way through re-saving the step that
    ``latest`` names; ``latest`` still loads and holds the old data."""
    folder = tmp_path / "checkpoints"
    save_training_state(folder, 7, {"model": {"w": torch.full((10,), 7.0)}, "step": 7}, keep_last=2)
    real_save = torch.save

    def dying_save(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        Path(path).write_bytes(Path(path).read_bytes()[:100])  # half-written...
        raise KeyboardInterrupt("killed")  # ...then the process dies

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_training_state(folder, 7, {"model": {"w": torch.full((10,), -1.0)}, "step": 7}, keep_last=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert _check_latest(folder) == 7


@pytest.mark.parametrize("pointer", ["../../outside.pt", "/etc/passwd", "", "sub/ckpt_00000001.pt", ".."])
def test_latest_must_name_a_file_in_its_folder(tmp_path, pointer):
    folder = tmp_path / "checkpoints"
    save_training_state(folder, 1, {"model": {"w": torch.zeros(2)}, "step": 1}, keep_last=2)
    torch.save({"model": {"w": torch.ones(2)}, "step": 99}, tmp_path / "outside.pt")
    (folder / LATEST).write_text(pointer)
    with pytest.raises(TrainingError, match="latest"):
        latest_checkpoint(folder)


# ------------------------------------------------------------------------------ jobs
jobs = pytest.importorskip("mae_service.jobs")


def _latest_missing(run: Path) -> None:
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / LATEST).write_text("ckpt_00000099.pt")


def _checkpoint_garbage(run: Path) -> None:
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt_00000001.pt").write_bytes(b"garbage")
    (run / "checkpoints" / LATEST).write_text("ckpt_00000001.pt")


def _checkpoint_truncated(run: Path) -> None:
    save_training_state(run / "checkpoints", 1, {"model": {"w": torch.zeros(1000)}, "step": 1}, keep_last=1)
    path = run / "checkpoints" / "ckpt_00000001.pt"
    path.write_bytes(path.read_bytes()[:300])


def _latest_escapes(run: Path) -> None:
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / LATEST).write_text("../../../../../../etc/passwd")


def _run_folder_is_a_file(run: Path) -> None:
    run.parent.mkdir(parents=True, exist_ok=True)
    run.write_text("not a folder")


def _checkpoints_is_a_file(run: Path) -> None:
    run.mkdir(parents=True)
    (run / "checkpoints").write_text("not a folder")


CORRUPTIONS = [_latest_missing, _checkpoint_garbage, _checkpoint_truncated, _latest_escapes,
               _run_folder_is_a_file, _checkpoints_is_a_file]


@pytest.fixture(scope="module")
def image_roots(tmp_path_factory):
    from support.train_helpers import make_images

    root = tmp_path_factory.mktemp("images")
    make_images(root / "shapes", count=16, size=40)
    return [root]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=[c.__name__.strip("_") for c in CORRUPTIONS])
def test_a_corrupted_run_folder_fails_its_job_not_the_worker(tmp_path, image_roots, corrupt):
    from fastapi.testclient import TestClient

    from app import Settings, create_app
    from support.jobs_helpers import job_request

    data = jobs.DataDir(tmp_path / "data").ensure()
    store = jobs.JobStore(data.store)
    bad = jobs.submit_pretrain(store, image_roots, job_request("shapes", epochs=1), max_attempts=2)
    corrupt(data.run_dir(bad.id))
    good = jobs.submit_pretrain(store, image_roots, job_request("shapes", epochs=1))
    worker = jobs.Worker(data, lease_s=5, poll_interval=0.05)
    worker.run(exit_when_idle=True)  # returns: the worker survived the bad job
    failed = store.get(bad.id)
    assert failed.state == "failed" and failed.error and len(failed.error) > 20, failed
    assert store.get(good.id).state == "succeeded"
    with TestClient(create_app(Settings(data_dir=data.root, checkpoint_dir=tmp_path / "none"))) as client:
        for path in (f"/api/jobs/{bad.id}", f"/api/jobs/{bad.id}/metrics", f"/api/jobs/{bad.id}/logs",
                     f"/train/jobs/{bad.id}", "/api/jobs", "/train"):
            resp = client.get(path)
            assert resp.status_code < 500, (path, resp.status_code, resp.text[:300])
        assert client.get(f"/api/jobs/{bad.id}").json()["error"]


def test_metrics_lines_the_pages_skip_do_not_fail_a_resume(tmp_path, image_roots):
    """Issue 15 #12: lines the pages tolerate (not an object, a step that is not an integer,
    bytes that are not UTF-8, a cut-off line) used to fail every attempt of the job; the
    resume now drops them with the same parser the pages use."""
    from support.jobs_helpers import job_request

    data = jobs.DataDir(tmp_path / "data").ensure()
    store = jobs.JobStore(data.store)
    job = jobs.submit_pretrain(store, image_roots, job_request("shapes", epochs=2), max_attempts=1)
    run = data.run_dir(job.id)
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_bytes(b'[1, 2]\n{"step": "abc"}\n\xff\xfe\x00 not json\n{')
    jobs.Worker(data, lease_s=5, poll_interval=0.05).run(exit_when_idle=True)
    done = store.get(job.id)
    assert done.state == "succeeded", done.error
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, done.total_steps + 1))
