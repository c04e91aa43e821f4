"""The inference worker: one thread, a bounded queue, micro-batches of compatible requests.

Requests never run the model on the event loop: a route submits a ``Job`` and awaits its future.
The worker takes the first waiting job, waits ``window`` seconds for more, groups what it has by
``Job.key`` (same checkpoint, resize policy and ``MaskRequest.group_key``: the exact ratio and
strategy, or explicit masks hiding the same number of patches) and runs each group as one
``Reconstructor.reconstruct_requests`` call. When a
batch fails with a typed error, its jobs are retried one by one so each request gets its own error.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from PIL import Image

from mae_core import PreparedImage, Reconstruction, Reconstructor
from mae_core.errors import MAEError
from mae_core.masking import MaskRequest

from .errors import QueueFullError, ServiceUnavailableError
from .registry import ModelRegistry

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One reconstruction request as the worker sees it."""

    model_id: str | None
    image: Image.Image | PreparedImage  # prepared when the route already fitted it to the model
    request: MaskRequest = field(default_factory=MaskRequest)  # checked by the route
    resize: str = "crop"
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    submitted: float = field(default_factory=time.perf_counter)

    def key(self) -> Hashable:
        """Jobs with equal keys can share one forward pass."""
        return (self.model_id, self.resize, self.request.group_key())


@dataclass
class JobResult:
    """What a finished job resolves to."""

    reconstruction: Reconstruction
    reconstructor: Reconstructor
    batch_size: int
    queue_ms: float


class Batcher:
    """Owns the worker thread. ``submit`` is safe to call from any thread.

    Args:
        registry: where checkpoints are loaded from.
        queue_size: jobs accepted but not finished (waiting + running) before ``submit`` raises
            QueueFullError.
        window: seconds to wait for compatible jobs after the first one.
        max_batch: most jobs in one forward pass.
        requests_in_flight: optional count of requests the server is handling; when no request
            besides the collected ones is in flight, nobody can join the batch, so the worker
            starts at once instead of waiting out the window (a lone request pays no window).
    """

    def __init__(self, registry: ModelRegistry, queue_size: int = 32, window: float = 0.003,
                 max_batch: int = 16, requests_in_flight: Callable[[], int] | None = None) -> None:
        self.registry = registry
        self.requests_in_flight = requests_in_flight
        self.queue_size = queue_size
        self.window = window
        self.max_batch = max_batch
        self._jobs: deque[Job] = deque()
        self._calls: deque[Callable[[], Any]] = deque()
        self._cond = threading.Condition()
        self._pending = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._ms_per_image = 50.0  # running estimate, for Retry-After
        self.batches_run = 0

    # --------------------------------------------------------------- control
    def start(self, on_start: Callable[[], Any] | None = None) -> None:
        """Start the worker; ``on_start`` (e.g. loading the default checkpoint) runs first in it."""
        self._thread = threading.Thread(target=self._run, args=(on_start,), name="mae-inference",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the running batch, fail the waiting jobs, join the thread."""
        with self._cond:
            self._stopping = True
            waiting = list(self._jobs)
            self._jobs.clear()
            self._pending -= len(waiting)
            self._cond.notify_all()
        for job in waiting:
            self._fail(job, ServiceUnavailableError("the server is shutting down; retry shortly"))
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def pending(self) -> int:
        """Jobs accepted and not finished yet."""
        with self._cond:
            return self._pending

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the worker thread before the next batch (e.g. loading a checkpoint)."""
        with self._cond:
            self._calls.append(fn)
            self._cond.notify()

    def submit(self, job: Job) -> concurrent.futures.Future:
        """Queue ``job``; its future resolves to a ``JobResult`` or raises the job's error."""
        with self._cond:
            if self._stopping or not self.alive:
                raise ServiceUnavailableError("the inference worker is not running; retry shortly")
            if self._pending >= self.queue_size:
                retry_ms = self.retry_after_ms()
                raise QueueFullError(
                    f"the reconstruction queue is full ({self._pending} requests waiting); "
                    f"retry in {retry_ms / 1000:.1f} s", retry_after_ms=retry_ms,
                )
            self._pending += 1
            self._jobs.append(job)
            self._cond.notify()
        return job.future

    def retry_after_ms(self) -> int:
        """About how long until the jobs now accepted are done (at least 50 ms)."""
        return max(50, round(max(1, self._pending) * self._ms_per_image))

    # ---------------------------------------------------------------- worker
    def _run(self, on_start: Callable[[], Any] | None) -> None:
        if on_start is not None:
            try:
                on_start()
            except Exception:  # noqa: BLE001 - keep serving other checkpoints
                log.exception("worker start-up hook failed")
        while True:
            batch = self._collect()
            if batch is None:
                return
            if not batch:
                self._run_calls()
                continue
            groups: dict[Hashable, list[Job]] = {}
            for job in batch:
                groups.setdefault(job.key(), []).append(job)
            for jobs in groups.values():
                live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
                try:
                    if live:
                        self._execute(live, retry_singly=True)
                finally:
                    with self._cond:
                        self._pending -= len(jobs)

    def _run_calls(self) -> None:
        while True:
            with self._cond:
                if not self._calls:
                    return
                fn = self._calls.popleft()
            try:
                fn()
            except Exception:  # noqa: BLE001 - a failed call must not stop the worker
                log.exception("worker call failed")

    def _collect(self) -> list[Job] | None:
        """The next batch of jobs; [] when only calls are waiting; None when stopping."""
        with self._cond:
            while not self._jobs and not self._calls and not self._stopping:
                self._cond.wait()
            if self._stopping and not self._jobs:
                return None
            if self._calls:
                return []
            batch = [self._jobs.popleft()]
            deadline = time.monotonic() + self.window
            while len(batch) < self.max_batch and not self._stopping:
                if self._jobs:
                    batch.append(self._jobs.popleft())
                    continue
                if self.requests_in_flight is not None and self.requests_in_flight() <= len(batch):
                    break  # no other request is on its way
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return batch

    def _execute(self, jobs: list[Job], retry_singly: bool) -> None:
        first = jobs[0]
        start = time.perf_counter()
        try:
            reconstructor = self.registry.get(first.model_id)
            recs = reconstructor.reconstruct_requests(
                [j.image for j in jobs], [j.request for j in jobs], resize=first.resize)
        except MAEError as exc:
            if retry_singly and len(jobs) > 1:
                for job in jobs:
                    self._execute([job], retry_singly=False)
                return
            for job in jobs:
                self._fail(job, exc)
            return
        except Exception as exc:  # noqa: BLE001 - surfaces as a 500 for these jobs only
            log.exception("reconstruction failed")
            for job in jobs:
                self._fail(job, exc)
            return
        per_image = (time.perf_counter() - start) * 1000 / len(jobs)
        self._ms_per_image = 0.8 * self._ms_per_image + 0.2 * per_image
        self.batches_run += 1
        for job, rec in zip(jobs, recs):
            queue_ms = (start - job.submitted) * 1000
            if not job.future.done():
                job.future.set_result(JobResult(rec, reconstructor, len(jobs), queue_ms))

    @staticmethod
    def _fail(job: Job, exc: BaseException) -> None:
        if not job.future.done():
            try:
                job.future.set_exception(exc)
            except concurrent.futures.InvalidStateError:
                pass
