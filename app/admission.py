"""Admission control: a cap on requests in flight, and draining for a graceful shutdown.

Every HTTP request except the liveness probe (``GET /api/health``) is counted from the moment its
headers arrive until its response is sent. Past ``limit`` requests, or once draining has begun
(SIGTERM), new requests get 503 with ``Retry-After``/``Retry-After-Ms`` at once (and every
answer sent while draining says ``Connection: close``): their bodies are
never read, so a flood of uploads costs neither memory nor CPU. ``app.server`` watches
``in_flight`` to know when draining is done.
"""

from __future__ import annotations

import asyncio
import threading

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import OverloadedError, ShuttingDownError, send_error

EXEMPT = {("GET", "/api/health"), ("HEAD", "/api/health")}


class Admission:
    """The shared counter. Thread-safe; one per app (``app.state.admission``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._in_flight = 0
        self.draining = False
        self.refused = 0

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def start_draining(self) -> None:
        """From now on every new request (except liveness) gets 503."""
        self.draining = True

    def try_enter(self) -> ShuttingDownError | OverloadedError | None:
        """Count a request in; or return the error that refuses it."""
        with self._lock:
            if self.draining:
                self.refused += 1
                return ShuttingDownError(
                    "the server is shutting down; retry in a moment (another instance, or this "
                    "one after its restart, will answer)")
            if self._in_flight >= self.limit:
                self.refused += 1
                return OverloadedError(
                    f"the server is handling {self._in_flight} requests, as many as it accepts "
                    "(MAE_MAX_IN_FLIGHT); retry in a moment", retry_after_ms=500)
            self._in_flight += 1
            return None

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class AdmissionMiddleware:
    """ASGI middleware applying an ``Admission`` to every HTTP request."""

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope.get("method"), scope.get("path")) in EXEMPT:
            await self.app(scope, receive, send)
            return
        refusal = self.admission.try_enter()
        if refusal is not None:
            await send_error(send, refusal)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = True
            if message["type"] == "http.response.start" and self.admission.draining:
                # no keep-alive past a drain: the client opens its next request elsewhere
                # instead of having it reset when the process exits
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            # cancelled by the server at the end of a drain: answer 503 if nothing was sent yet
            if self.admission.draining and not started:
                await send_error(send, ShuttingDownError(
                    "the server shut down before this request finished; send it again"))
            raise
        finally:
            self.admission.leave()

