"""Run the app under uvicorn with a graceful, bounded shutdown (what ``mae serve`` calls).

On the first SIGTERM or SIGINT the server keeps listening but drains: requests already admitted
(in flight, or still receiving their body) run to completion, new ones get 503 ``shutting_down``
with ``Retry-After`` (so a load balancer or client moves on instead of seeing refused
connections). Once no admitted request is left (``Admission.active``), or
``shutdown_grace_s`` (less a half-second reserve) has passed, uvicorn shuts down (a request still
running is cancelled; one that has not started its answer gets 503) and the process exits without
the interpreter's slow module teardown. A watchdog ends the process one second after the grace
period in any case; a second SIGINT (Ctrl-C twice) exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from .admission import Admission
from .http_limits import limited_httptools_protocol
from .settings import Settings

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc mallopt parameter
WATCHDOG_MARGIN_S = 1.0
SHUTDOWN_RESERVE_S = 0.5  # of the grace period, kept for uvicorn's and the app's own shutdown


def share_one_malloc_arena() -> bool:
    """Make threads created from now on allocate from glibc's main heap (Linux only).

    The model runs on the inference thread. In a thread's own malloc arena, glibc hands the
    megabytes of activations back to the kernel between requests, so every request page-faults
    them in again (~400 faults, a few percent of a batch-1 forward); the main heap keeps them.
    Returns False where there is no glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, 1))
    except (OSError, AttributeError):  # musl and others: no mallopt / no such parameter
        return False


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` whose exit signal starts a drain bounded by ``grace_s``."""

    def __init__(self, config: uvicorn.Config, admission: Admission, grace_s: float) -> None:
        super().__init__(config)
        self.admission = admission
        self.grace_s = grace_s
        self.drain_deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_deadline is not None:  # a second signal
            if sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True
            return
        reserve = min(SHUTDOWN_RESERVE_S, self.grace_s / 4)
        self.drain_deadline = time.monotonic() + self.grace_s - reserve
        self.admission.start_draining()
        log.info("signal %d: draining %d admitted request(s), refusing new ones (grace %.1f s)",
                 sig, self.admission.active, self.grace_s)
        threading.Thread(target=_watchdog, args=(self.grace_s + WATCHDOG_MARGIN_S,),
                         name="shutdown-watchdog", daemon=True).start()

    async def on_tick(self, counter: int) -> bool:
        if self.drain_deadline is not None and not self.should_exit:
            remaining = self.drain_deadline - time.monotonic()
            if self.admission.active == 0 or remaining <= 0:
                # uvicorn's own wait for connections gets what is left of the drain
                self.config.timeout_graceful_shutdown = max(0.05, remaining)
                self.should_exit = True
        return await super().on_tick(counter)


def _watchdog(seconds: float) -> None:
    time.sleep(seconds)
    log.error("shutdown took longer than the grace period; exiting now")
    logging.shutdown()
    os._exit(1)


def serve(app: FastAPI, settings: Settings, log_level: str = "info", exit_process: bool = False) -> None:
    """Serve ``app`` on ``settings.host``:``settings.port`` until a signal drains and stops it.

    ``exit_process=True`` (``mae serve``) ends the process right after a clean shutdown: the
    app's lifespan has finished, and skipping the interpreter's teardown of torch & co. (about a
    second) keeps the exit inside the grace period.
    """
    share_one_malloc_arena()
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                            timeout_graceful_shutdown=settings.shutdown_grace_s,
                            http=limited_httptools_protocol(settings.max_header_bytes, settings.max_headers),
                            h11_max_incomplete_event_size=settings.max_header_bytes)
    server = GracefulServer(config, app.state.admission, settings.shutdown_grace_s)
    server.run()
    if exit_process and server.drain_deadline is not None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
