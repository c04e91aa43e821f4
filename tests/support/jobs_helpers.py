"""Shared helpers for job-store, worker and end-to-end tests: tiny job requests, subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from support.train_helpers import TINY

REPO = Path(__file__).resolve().parents[2]

# A pretraining request that runs in well under a second per epoch on one CPU core:
# 32 px images, 8 px patches, 2 encoder blocks, one metrics line per step.
TINY_JOB: dict[str, Any] = {
    "model": "mae_vit_tiny_patch16", "img_size": 32, "model_overrides": dict(TINY, patch_size=8),
    "batch_size": 8, "norm_pix_loss": False, "device": "cpu", "log_every": 1,
    "snapshot_every": 1000,
}


def job_request(dataset: str, epochs: int, **changes: Any) -> dict[str, Any]:
    return {**TINY_JOB, "dataset": dataset, "epochs": epochs, **changes}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str = "condition",
               interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test environment for `mae` subprocesses: one torch thread each (2-core machines)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def start_mae(args: list[str], log_path: Path, env: dict[str, str] | None = None,
              cwd: Path = REPO) -> subprocess.Popen:
    """``python -m mae_cli ARGS`` in ``cwd`` (default the repository root), output to ``log_path``."""
    log = open(log_path, "w")
    env = dict(env or subprocess_env())
    if cwd != REPO:  # the code still comes from this checkout
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen([sys.executable, "-m", "mae_cli", *args], cwd=cwd,
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen, timeout: float = 20) -> int:
    """Terminate a subprocess we started (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def http_json(url: str, body: dict | None = None, method: str | None = None) -> tuple[int, Any]:
    """(status, decoded JSON) of a request; HTTP errors are returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def serve_until_healthy(root: Path, data: Path, env: dict[str, str]):
    """``mae serve`` on a free port with ``data`` as its data folder (log: ``root/serve.log``),
    once /api/health answers 200; returns (process, base URL, an httpx client on it)."""
    import httpx

    from mae_tools.testing import free_port

    port = free_port()
    serve = start_mae(["serve", "--port", str(port), "--data-dir", str(data)], root / "serve.log", env)
    base = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=base, timeout=30)

    def up() -> bool:
        assert serve.poll() is None, (root / "serve.log").read_text()[-2000:]
        try:
            return http.get("/api/health").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, 120, "mae serve", interval=0.2)
    return serve, base, http
