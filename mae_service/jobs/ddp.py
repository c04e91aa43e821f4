"""Running a pretraining job on several processes: the worker launches torchrun, keeps the lease.

``python -m torch.distributed.run --standalone --nproc-per-node N`` starts one trainer process
per GPU (gloo processes on a CPU worker), in a process group of its own. The worker process
stays the job's owner: its heartbeat renews the lease, and on cancel or SIGTERM it sends
SIGTERM to the whole group; every rank finishes its step (the ranks agree on the stop, see
``agree_on_stop``), rank 0 checkpoints and the group exits. A lost lease kills the group at once.
Rank 0 does all the writing, each write fenced against the job store as in one process
(``JobStore.holds``), and reports progress and its result to the worker as lines on stdout.
If the worker dies (SIGKILL), the launcher and the ranks die with it (``PR_SET_PDEATHSIG``);
the next worker resumes from the last checkpoint, exactly.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mae_service.jobs.store import Job, JobStore, LeaseLost

log = logging.getLogger(__name__)

PROGRESS, RESULT = "MAE-PROGRESS ", "MAE-RESULT "  # rank 0's lines to the worker
PARENT_ENV = "MAE_DDP_PARENT"  # the pid a launcher or rank dies with
FENCE_ENV = ("MAE_FENCE_STORE", "MAE_FENCE_JOB", "MAE_FENCE_WORKER")
STOP_GRACE_S = 120.0  # after SIGTERM, how long the group may take to checkpoint before SIGKILL


def _die_with_parent() -> None:
    """Get SIGKILL when the process that started us exits (Linux); exit if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the lease fence still stops an orphan
        return
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):
        os._exit(1)


def command(nproc: int, config_file: Path) -> list[str]:
    return [sys.executable, "-m", "mae_service.jobs.ddp_entry", "launch", str(nproc), str(config_file)]


def run_ddp(job: Job, config: dict[str, Any], should_stop: Any, on_progress: Any, fence: Any,
            store_target: str, worker_id: str, nproc: int) -> tuple[str, int, str | None]:
    """Train ``config`` on ``nproc`` processes; returns (status, step, export path)."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mae-ddp-") as tmp:
        config_file = Path(tmp) / "config.json"
        config_file.write_text(json.dumps(config), encoding="utf-8")
        env = {**os.environ, PARENT_ENV: str(os.getpid()),
               **dict(zip(FENCE_ENV, (store_target, job.id, worker_id)))}
        proc = subprocess.Popen(command(nproc, config_file), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        reader = threading.Thread(target=_read, args=(proc, job.id, on_progress, result), daemon=True)
        reader.start()
        log.info("job %s: torchrun started %d processes (group %d)", job.id, nproc, proc.pid)
        asked_to_stop = _supervise(proc, job, should_stop, fence)
        reader.join(timeout=10)
    if "status" not in result and asked_to_stop:
        # stopped before rank 0 could train (still starting): nothing new to checkpoint, so the
        # job goes back to the queue (or is cancelled) as from a stop after a step
        return "stopped", int(result.get("last_step", job.step)), None
    if "status" not in result:
        raise RuntimeError(f"torchrun exited with status {proc.returncode} before rank 0 "
                           "reported a result; the job log has its output")
    status = result["status"]
    if status == "interrupted" and asked_to_stop:
        status = "stopped"  # we sent the signal: the worker's cancel/shutdown, not an outside one
    return status, int(result["step"]), result.get("export_path")


def _supervise(proc: subprocess.Popen, job: Job, should_stop: Any, fence: Any) -> bool:
    """Wait for the group; SIGTERM it when the job should stop, SIGKILL it if the lease is lost.
    Returns whether we asked it to stop."""
    stopped_at: float | None = None
    while True:
        try:
            proc.wait(timeout=0.2)
            return stopped_at is not None
        except subprocess.TimeoutExpired:
            pass
        if stopped_at is None and should_stop():
            try:
                fence()
            except LeaseLost:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
                raise
            log.info("job %s: stopping the torchrun group (checkpoint, then exit)", job.id)
            _signal_group(proc, signal.SIGTERM)
            stopped_at = time.monotonic()
        elif stopped_at is not None and time.monotonic() - stopped_at > STOP_GRACE_S:
            log.warning("job %s: the torchrun group did not exit in %.0f s; killing it", job.id,
                        STOP_GRACE_S)
            _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _read(proc: subprocess.Popen, job_id: str, on_progress: Any, result: dict[str, Any]) -> None:
    """Rank 0's progress and result lines; everything else goes to the job log."""
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line.startswith(PROGRESS):
            try:
                record = json.loads(line[len(PROGRESS):])
                result["last_step"] = int(record["step"])
                on_progress(record)
            except Exception:  # noqa: BLE001 - progress is advisory; the run goes on
                log.exception("job %s: cannot record progress", job_id)
        elif line.startswith(RESULT):
            result.update(json.loads(line[len(RESULT):]))
        elif line.strip():
            log.info("job %s [torchrun] %s", job_id, line)


# ---------------------------------------------------------------------- in the launched processes
def _launch(nproc: int, config_file: str) -> int:
    """The launcher: torchrun, dying with the worker; its ranks die with it."""
    _die_with_parent()
    os.environ[PARENT_ENV] = str(os.getpid())
    from torch.distributed.run import main

    main(["--standalone", "--nproc-per-node", str(nproc), "-m", "mae_service.jobs.ddp_entry", "rank",
          config_file])
    return 0


def _rank(config_file: str) -> int:
    """One rank: train with resume, every write fenced by the worker's lease."""
    _die_with_parent()
    from mae_core.train import TrainConfig, Trainer

    target, job_id, worker_id = (os.environ[name] for name in FENCE_ENV)
    store = JobStore(target)

    def fence() -> None:
        if not store.holds(job_id, worker_id):
            raise LeaseLost(f"job {job_id}: another worker owns it now; rank "
                            f"{os.environ.get('RANK')} stops without writing")

    main = os.environ.get("RANK", "0") == "0"

    def report(record: dict[str, Any]) -> None:
        print(PROGRESS + json.dumps(record, default=str), flush=True)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = TrainConfig.from_dict(json.loads(Path(config_file).read_text(encoding="utf-8")))
    result = Trainer(config, resume=True, progress=False, on_log=report if main else None,
                     fence=fence).run()
    if main:
        print(RESULT + json.dumps({"status": result.status, "step": result.step, "export_path":
                                   None if result.export_path is None else str(result.export_path)}),
              flush=True)
    return 0


def entry(argv: list[str]) -> int:
    verb, *rest = argv
    return _launch(int(rest[0]), rest[1]) if verb == "launch" else _rank(rest[0])
