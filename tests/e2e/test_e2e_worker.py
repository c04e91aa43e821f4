"""End to end: `mae serve` and `mae worker` as real processes on one temp data folder, started
with the commands and environment docker-compose.yml gives its two services (paths mapped to
temp folders). Jobs go in over HTTP; workers are killed, stopped and doubled up."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from mae_tools.testing import free_port, png_bytes, synthetic_photo
from mae_core.runs import RunFolder
from mae_core.train.state import latest_checkpoint, load_training_state
from support.jobs_helpers import REPO, job_request, start_mae, stop, subprocess_env, wait_until
from support.train_helpers import make_images

pytestmark = pytest.mark.slow

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
CONTAINER_DATA_DIR = COMPOSE["services"]["web"]["environment"]["MAE_DATA_DIR"]
TEST_LEASE_S = "2"


def compose_command(service: str, data_dir: Path, **flags: str) -> list[str]:
    """The service's compose command with the container data folder mapped to ``data_dir`` and
    some flag values replaced (``port="1234"`` replaces the value after ``--port``)."""
    command = [str(data_dir) if arg == CONTAINER_DATA_DIR else arg
               for arg in COMPOSE["services"][service]["command"]]
    for name, value in flags.items():
        option = "--" + name.replace("_", "-")
        if option in command:
            command[command.index(option) + 1] = value
        else:
            command += [option, value]
    return command


def compose_env(service: str, data_dir: Path, images: Path, **extra: str) -> dict[str, str]:
    env = dict(COMPOSE["services"][service]["environment"])
    assert set(env) == {"MAE_DATA_DIR", "MAE_DATA_ROOTS", *PASSED_THROUGH}
    # the access settings compose passes through from the host, at their defaults (unset there)
    defaults = {name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", env[name]) for name in PASSED_THROUGH}
    return subprocess_env(MAE_DATA_DIR=str(data_dir), MAE_DATA_ROOTS=str(images), **{**defaults, **extra})


PASSED_THROUGH = ("MAE_AUTH_TOKEN", "MAE_AUTH_SCOPE", "MAE_ALLOWED_HOSTS")


@dataclass
class Stack:
    base: str
    data_dir: Path
    images: Path
    logs: Path
    http: httpx.Client
    workers: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(self, name: str) -> subprocess.Popen:
        command = compose_command("worker", self.data_dir, lease=TEST_LEASE_S, poll_interval="0.2",
                                  worker_id=name)
        proc = start_mae(command, self.logs / f"{name}.log",
                         env=compose_env("worker", self.data_dir, self.images))
        self.workers.append(proc)
        return proc

    def worker_log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def submit(self, **request) -> dict:
        resp = self.http.post("/api/jobs", json=request)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def job(self, job_id: str) -> dict:
        return self.http.get(f"/api/jobs/{job_id}").json()

    def wait_state(self, job_id: str, state: str, timeout: float = 180) -> dict:
        def reached():
            job = self.job(job_id)
            assert job["state"] not in {"failed", "cancelled"} - {state}, job
            return job if job["state"] == state else None
        return wait_until(reached, timeout, f"job {job_id} to be {state}", interval=0.1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    images, data_dir, logs = root / "images", root / "data", root / "logs"
    logs.mkdir()
    make_images(images / "shapes", count=32, size=40)
    port = free_port()
    serve = start_mae(
        compose_command("web", data_dir, host="127.0.0.1", port=str(port)), logs / "serve.log",
        env=compose_env("web", data_dir, images, MAE_CHECKPOINT_DIR=str(root / "no-checkpoints"),
                        MAE_DEVICE="cpu"))
    base = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=base, timeout=60)

    def healthy():
        assert serve.poll() is None, (logs / "serve.log").read_text()[-3000:]
        try:
            return http.get("/api/health").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, 120, "mae serve to answer", interval=0.2)
    stack = Stack(base, data_dir, images, logs, http)
    try:
        yield stack
    finally:
        for proc in stack.workers:
            stop(proc)
        stop(serve)
        http.close()


def test_job_over_http_runs_to_success_and_reconstructs(stack):
    job = stack.submit(**job_request("shapes", epochs=25, ckpt_every_steps=20, snapshot_every=25))
    assert stack.job(job["id"])["state"] == "queued"
    listing = stack.http.get("/api/jobs").json()
    assert listing["workers"] == [] and listing["counts"]["queued"] == 1

    worker = stack.start_worker("solo")
    seen_states, progress = ["queued"], []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        current = stack.job(job["id"])
        if current["state"] != seen_states[-1]:
            seen_states.append(current["state"])
        if current["state"] == "running":
            progress.append(current["progress"])
        if current["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.05)
    assert seen_states == ["queued", "running", "succeeded"], seen_states
    assert any(0 < p < 1 for p in progress) and progress == sorted(progress), progress
    done = stack.job(job["id"])
    assert done["step"] == done["total_steps"] == 100 and done["checkpoint"] == job["id"]
    assert stack.http.get("/api/jobs").json()["workers"][0]["id"] == "solo"

    metrics = stack.http.get(f"/api/jobs/{job['id']}/metrics").json()
    assert [m["step"] for m in metrics["metrics"]] == list(range(1, 101))
    assert len(metrics["snapshots"]) >= 4

    # the new model is offered and used without restarting the server
    models = {m["id"]: m for m in stack.http.get("/api/models").json()["models"]}
    assert models[job["id"]]["can_reconstruct"]
    resp = stack.http.post("/reconstruct", data={"model": job["id"], "seed": "3"},
                           files={"image": ("photo.png", png_bytes(synthetic_photo()), "image/png")})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == job["id"] and body["grid"] == [4, 4] and body["panels"]["pasted"]

    assert stop(worker) == 0  # SIGTERM while idle: a clean exit


def test_sigkill_mid_job_resumes_from_the_last_checkpoint(stack):
    job = stack.submit(**job_request("shapes", epochs=60, ckpt_every_steps=10))
    first = stack.start_worker("doomed")
    wait_until(lambda: stack.job(job["id"])["step"] >= 25, 120, "25 steps")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    ckpt = latest_checkpoint(stack.data_dir / "runs" / job["id"] / "checkpoints")
    saved_step = load_training_state(ckpt)["step"]
    killed_at = stack.job(job["id"])
    assert killed_at["state"] == "running" and saved_step >= 20 and saved_step <= killed_at["step"]

    # the web app notices the silent worker once its lease has run out
    wait_until(lambda: stack.job(job["id"])["stale"], 30, "the lease to expire")

    second = stack.start_worker("rescuer")
    wait_until(lambda: stack.job(job["id"])["worker"] == "rescuer", 60, "the job to be claimed again")
    steps_after_claim = []

    def finished():
        current = stack.job(job["id"])
        if current["worker"] == "rescuer":
            steps_after_claim.append(current["step"])
        return current["state"] == "succeeded"

    wait_until(finished, 180, "the resumed job to finish", interval=0.05)
    done = stack.job(job["id"])
    assert done["attempts"] == 2 and done["step"] == 240
    assert [e["event"] for e in done["events"] if e["worker"]] == [
        "claimed", "lease_expired", "claimed", "succeeded"]
    assert min(steps_after_claim) >= saved_step  # continued from the checkpoint, not from zero
    assert f"resumed from {ckpt.name} at step {saved_step}" in stack.worker_log("rescuer")
    steps = [r["step"] for r in RunFolder(stack.data_dir / "runs" / job["id"]).read_metrics()]
    assert steps == list(range(1, 241))
    card = json.loads((stack.data_dir / "checkpoints" / f"{job['id']}.json").read_text())
    assert card["training"]["steps"] == 240
    stop(second)


def test_sigterm_checkpoints_requeues_and_exits_promptly(stack):
    job = stack.submit(**job_request("shapes", epochs=500, ckpt_every_steps=1000))
    worker = stack.start_worker("polite")
    wait_until(lambda: stack.job(job["id"])["step"] >= 10, 120, "10 steps")
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert time.monotonic() - started < 10
    requeued = stack.job(job["id"])
    assert requeued["state"] == "queued" and requeued["attempts"] == 0 and requeued["worker"] is None
    saved = load_training_state(latest_checkpoint(stack.data_dir / "runs" / job["id"] / "checkpoints"))
    assert saved["step"] == requeued["step"] >= 10
    assert requeued["events"][-1]["event"] == "requeued"
    assert stack.http.post(f"/api/jobs/{job['id']}/cancel").json()["state"] == "cancelled"


def test_two_workers_never_run_one_job_twice(stack):
    jobs = [stack.submit(**job_request("shapes", epochs=3, seed=i)) for i in range(6)]
    stack.start_worker("left")
    stack.start_worker("right")
    for job in jobs:
        stack.wait_state(job["id"], "succeeded")
    claims = re.findall(r"job (job-[\w-]+) \(pretrain\): claimed by (\w+)",
                        stack.worker_log("left") + stack.worker_log("right"))
    ours = [job_id for job_id, _ in claims if job_id in {j["id"] for j in jobs}]
    assert sorted(ours) == sorted(j["id"] for j in jobs)  # each job claimed exactly once
    for job in jobs:
        done = stack.job(job["id"])
        assert done["attempts"] == 1
        assert [e["event"] for e in done["events"]] == ["submitted", "claimed", "succeeded"]
