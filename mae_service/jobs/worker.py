"""The worker loop behind ``mae worker``: claim a job, run it under a lease, record the result.

One job at a time per worker process; run more processes (or containers) for more at once.

How a job ends, seen from the store:

* completed: ``succeeded``, with the exported model published as checkpoint ``<job-id>``;
* cancelled while running: ``cancelled``; the trainer checkpointed on its way out;
* the worker was asked to stop (SIGTERM/SIGINT): the trainer checkpoints, the job goes back to
  the queue (the attempt does not count) and the worker exits;
* an exception: the attempt counts; the job is queued again until ``max_attempts``, then
  ``failed`` with the error. A bad config fails at once (retrying cannot help);
* SIGKILL / power loss: nothing is written; the lease expires and the next claim requeues it;
* stalled past its lease (SIGSTOP, a frozen VM) while another worker claimed the job: every
  write to the run folder is fenced by the lease (``JobStore.holds``), so on waking up the
  stalled worker abandons the job without writing (not even to the job's log);
* the store is unavailable (locked for long, damaged): the worker logs it, backs off
  (doubling from ``retry_s`` up to ``max_retry_s``) and tries again; it never exits for it.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from mae_core.errors import InvalidParameterError
from mae_service.jobs.heartbeat import Heartbeat
from mae_service.jobs.paths import DataDir
from mae_service.jobs.runner import RUNNERS, Outcome, run_pretrain
from mae_service.jobs.spec import PRETRAIN
from mae_core.runs import LOG_FILE
from mae_service.jobs.store import (
    CANCELLED,
    FAILED,
    SUCCEEDED,
    Job,
    JobStore,
    LeaseLost,
    StoreUnavailable,
    new_worker_id,
)

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOB_LOG = LOG_FILE  # the run folder's log file (mae_core.runs)


@contextmanager
def job_log(path: Path, muted: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Copy this process's log records to ``path`` while a job runs (the page's logs tail),
    except while ``muted()`` (the job was lost to another worker, whose log it is now).

    mae_core's and mae_service's INFO records are always included, even when the process logs only warnings.
    A run folder that cannot be written (e.g. a file in its place) only costs the job its log
    file: the job itself then fails with the reason, and the worker carries on.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write the job log %s: %s", path, exc)
        yield
        return
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(lambda record: not muted())
    root = logging.getLogger()
    ours = [logging.getLogger(name) for name in ("mae_core", "mae_service")]
    levels = [logger.level for logger in ours]
    for logger in ours:
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        for logger, level in zip(ours, levels):
            logger.setLevel(level)


def detect_gpus() -> int:
    """The CUDA devices this host has, at least 1 (a CPU-only host runs one-process jobs)."""
    import torch

    return max(1, torch.cuda.device_count())


class Worker:
    """Runs queued jobs from the store in ``data_dir``.

    Args:
        data_dir: the shared data folder (job store, run folders, published checkpoints).
        poll_interval: seconds between looks at an empty queue.
        lease_s: how long a claim holds without renewal; a killed worker's job is claimed
            again this long after its last heartbeat.
        heartbeat_s: seconds between lease renewals (and cancellation checks); default
            ``min(1, lease_s / 4)``.
        worker_id: a name for this worker in the store (default host-pid-random).
        retry_s, max_retry_s: back-off after the store was unavailable: ``retry_s`` seconds,
            doubling each time it still is, at most ``max_retry_s``.
        jobs_url: the job store: a ``postgresql://`` URL (workers on several hosts, with
            ``data_dir`` on shared storage), or None for the SQLite file in ``data_dir``.
        gpus: how many processes this worker may launch for one job; it claims only jobs
            asking for at most that many (default: the CUDA devices it sees, at least 1). A job
            of several runs through torchrun, one process per GPU; on a CPU-only worker
            ``gpus=N`` means N gloo processes.
    """

    def __init__(self, data_dir: DataDir | Path, *, poll_interval: float = 2.0, lease_s: float = 30.0,
                 heartbeat_s: float | None = None, worker_id: str | None = None,
                 retry_s: float = 1.0, max_retry_s: float = 60.0, jobs_url: str | None = None,
                 gpus: int | None = None) -> None:
        self.data_dir = (data_dir if isinstance(data_dir, DataDir) else DataDir(Path(data_dir))).ensure()
        self.store_target = str(jobs_url or self.data_dir.store)
        self.store = JobStore(self.store_target)
        self.gpus = detect_gpus() if gpus is None else gpus
        if self.gpus < 1:
            raise InvalidParameterError(f"gpus must be at least 1 (got {self.gpus})")
        self.poll_interval = poll_interval
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s or min(1.0, lease_s / 4)
        self.id = worker_id or new_worker_id()
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.store_errors = 0  # consecutive times the store was unavailable
        self._stop = False

    # ------------------------------------------------------------------ control
    def request_stop(self) -> None:
        """Finish (checkpoint and requeue) the current job and leave the loop.

        Only sets a flag, so it is safe to call from a signal handler.
        """
        self._stop = True

    @property
    def stopping(self) -> bool:
        return self._stop

    def run(self, max_jobs: int | None = None, exit_when_idle: bool = False) -> int:
        """Poll and run jobs until stopped (or ``max_jobs`` ran, or the queue is empty and
        ``exit_when_idle``). Returns how many jobs it ran."""
        log.info("worker %s: data folder %s, lease %.0f s, polling every %.1f s, jobs of up to "
                 "%d gpu(s)", self.id, self.data_dir.root, self.lease_s, self.poll_interval,
                 self.gpus)
        done = 0
        try:
            while not self._stop:
                self._seen()
                try:
                    state = self.run_one()
                except StoreUnavailable as exc:
                    self._back_off(exc)
                    continue
                self.store_errors = 0
                if state is not None:
                    done += 1
                    if max_jobs is not None and done >= max_jobs:
                        break
                    continue
                if exit_when_idle:
                    break
                self._sleep(self.poll_interval)
        finally:
            try:
                self.store.forget_worker(self.id)
            except StoreUnavailable:
                pass
        log.info("worker %s: exiting after %d job(s)", self.id, done)
        return done

    def _back_off(self, exc: StoreUnavailable) -> None:
        self.store_errors += 1
        wait = min(self.max_retry_s, self.retry_s * 2 ** (self.store_errors - 1))
        log.warning("worker %s: %s; retrying in %.1f s (%d in a row)", self.id, exc, wait,
                    self.store_errors)
        self._sleep(wait)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _seen(self, job_id: str | None = None) -> None:
        try:
            self.store.seen(self.id, job_id)
        except StoreUnavailable as exc:
            log.warning("cannot record worker presence: %s", exc)

    # ------------------------------------------------------------------ one job
    def run_one(self) -> str | None:
        """Claim and run one job. Returns its state afterwards (``"lost"`` if another worker
        took it over), or None when the queue is empty."""
        job = self.store.claim(self.id, self.lease_s, self.gpus)
        if job is None:
            return None
        self._seen(job.id)
        heartbeat = Heartbeat(self.store, job.id, self.id, self.lease_s, self.heartbeat_s)
        heartbeat.start()
        try:
            with job_log(self.data_dir.run_dir(job.id) / JOB_LOG, lambda: heartbeat.lost):
                log.info("job %s (%s): claimed by %s, attempt %d of %d", job.id, job.kind, self.id,
                         job.attempts, job.max_attempts)
                return self._execute(job, heartbeat)
        finally:
            heartbeat.stop()

    def _execute(self, job: Job, heartbeat: Heartbeat) -> str:
        runner = RUNNERS.get(job.kind)
        if runner is None:
            return self._finish(job, FAILED, error=f"unknown job kind {job.kind!r}; this worker "
                                f"runs {', '.join(sorted(RUNNERS))}")
        if job.gpus > 1:
            if job.kind != PRETRAIN:
                return self._finish(job, FAILED, error=f"a {job.kind} job runs on one process; "
                                    f"submit it with gpus 1 (it asked for {job.gpus})")
            runner = functools.partial(run_pretrain, launch=(self.store_target, self.id))

        def should_stop() -> bool:
            return self._stop or heartbeat.cancel_requested or heartbeat.lost

        try:
            outcome = runner(job, self.data_dir, should_stop, lambda r: self._progress(job, r, heartbeat),
                             self._fence(job, heartbeat))
        except LeaseLost as exc:
            log.warning("%s", exc)
            return "lost"
        except InvalidParameterError as exc:  # the config itself is wrong: retrying cannot help
            log.error("job %s: %s", job.id, exc)
            return self._finish(job, FAILED, error=f"invalid job: {exc}")
        except Exception as exc:  # noqa: BLE001 - recorded on the job; the worker carries on
            log.exception("job %s failed", job.id)
            heartbeat.stop()
            state = self.store.fail_attempt(job.id, self.id, f"{type(exc).__name__}: {exc}")
            log.info("job %s: attempt %d failed; now %s", job.id, job.attempts, state)
            return state or "lost"
        heartbeat.stop()
        return self._record(job, outcome, heartbeat)

    def _fence(self, job: Job, heartbeat: Heartbeat) -> Callable[[], None]:
        """Raises LeaseLost unless this worker still owns the job (called before every write)."""
        def fence() -> None:
            if heartbeat.lost or not self.store.holds(job.id, self.id):
                heartbeat.lost = True
                raise LeaseLost(f"job {job.id}: another worker owns it now; {self.id} stops "
                                "without writing to its run folder")
        return fence

    def _record(self, job: Job, outcome: Outcome, heartbeat: Heartbeat) -> str:
        if heartbeat.lost:
            log.warning("job %s: another worker owns it now; discarding this attempt", job.id)
            return "lost"
        if outcome.status == "completed":
            return self._finish(job, SUCCEEDED, checkpoint=outcome.checkpoint,
                                detail=f"{outcome.step} steps; checkpoint {outcome.checkpoint}")
        if heartbeat.cancel_requested or self.store.get(job.id).cancel_requested:
            return self._finish(job, CANCELLED, detail=f"stopped at step {outcome.step}; "
                                "its last checkpoint is kept")
        if self._stop or outcome.status == "interrupted":
            self._stop = True
            self.store.requeue(job.id, self.id, f"worker shut down at step {outcome.step}; "
                               "checkpoint saved, another worker resumes it")
            log.info("job %s: checkpointed at step %d and requeued", job.id, outcome.step)
            return "queued"
        return self._finish(job, FAILED, error=f"training stopped at step {outcome.step} before the "
                            "end (max_steps); retry it with a longer run")

    def _finish(self, job: Job, state: str, **fields: Any) -> str:
        if not self.store.finish(job.id, self.id, state, **fields):
            log.warning("job %s: could not record %s; another worker owns it", job.id, state)
            return "lost"
        log.info("job %s: %s", job.id, state)
        return state

    def _progress(self, job: Job, record: dict[str, Any], heartbeat: Heartbeat) -> None:
        step, total = int(record["step"]), int(record.get("total_steps") or 0)
        elapsed = record.get("elapsed_s")
        eta = (total - step) * elapsed / step if step and elapsed else None
        loss = record.get("loss")
        loss = loss if isinstance(loss, float) and math.isfinite(loss) else None
        try:
            if not self.store.report_progress(job.id, self.id, step=step, total_steps=total,
                                              loss=loss, eta_s=eta):
                heartbeat.lost = True  # another worker owns the job: the next write is refused
                return
        except StoreUnavailable as exc:
            log.warning("job %s: cannot record progress: %s", job.id, exc)
        log.info("job %s: step %d/%d loss %s lr %.3g", job.id, step, total,
                 "n/a" if loss is None else f"{loss:.4f}", record.get("lr", float("nan")))
