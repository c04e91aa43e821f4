"""A background thread that keeps a worker's lease on its job and notices cancellation."""

from __future__ import annotations

import logging
import threading

from mae_service.jobs.store import JobStore, StoreUnavailable

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Renews the lease on ``job_id`` every ``interval_s`` seconds until ``stop()``.

    ``cancel_requested`` turns true when someone cancels the job; ``lost`` when another worker
    owns it (our lease ran out). The training loop polls both through its ``should_stop``.
    A database that stays locked for a while only skips beats: the lease is several beats long.
    """

    def __init__(self, store: JobStore, job_id: str, worker_id: str, lease_s: float,
                 interval_s: float) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.store = store
        self.job_id = job_id
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.interval_s = interval_s
        self.cancel_requested = False
        self.lost = False
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval_s):
            try:
                lease = self.store.renew(self.job_id, self.worker_id, self.lease_s)
                self.store.seen(self.worker_id, self.job_id)
            except StoreUnavailable as exc:
                log.warning("job %s: lease renewal failed (%s); retrying", self.job_id, exc)
                continue
            if not lease.held:
                self.lost = True
                log.warning("job %s: lease lost to another worker; stopping", self.job_id)
                return
            if lease.cancel_requested and not self.cancel_requested:
                self.cancel_requested = True
                log.info("job %s: cancel requested; stopping after this step", self.job_id)

    def stop(self) -> None:
        self._done.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)
