"""Admission control: caps on requests receiving their body and in flight, and draining.

Every HTTP request except the liveness probe (``GET /api/health``) is counted from the moment its
headers arrive until its response is sent, in one of two counts:

* ``receiving``: a request with a body (``Content-Length`` over 0, or ``Transfer-Encoding``)
  until the app has read the last piece of it. An idle or trickling upload costs only this, so
  ``MAE_MAX_IN_FLIGHT`` slow bodies do not lock everybody else out (``BodyLimitMiddleware``
  ends them with 408 after ``MAE_BODY_IDLE_TIMEOUT_S``). Capped by ``max_receiving``
  (``MAE_MAX_RECEIVING``). A request answered before its body was read to the end (a 413, a
  route that ignores the body) stays here until its answer is sent.
* ``in_flight``: requests being handled, capped by ``limit`` (``MAE_MAX_IN_FLIGHT``). A request
  without a body takes its slot at once; one with a body when the body is complete. If no slot
  is free then, it gets 503 ``overloaded`` (the app sees a disconnect, whatever it answers is
  dropped; FastAPI would turn an exception raised while it reads the body into a 400).

At header time a request is refused with 503 (``Retry-After``/``Retry-After-Ms``) at once, its
body never read, once draining has begun (SIGTERM), while every handling slot is taken, or, for
one with a body, while ``max_receiving`` bodies are arriving: a flood of uploads costs neither
memory nor CPU. Every answer sent while draining says ``Connection: close``. Requests admitted
before the drain (receiving or in flight) still finish; ``app.server`` waits for ``active``, both
counts, to reach 0.
"""

from __future__ import annotations

import asyncio
import threading

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import OverloadedError, ShuttingDownError, send_error

EXEMPT = {("GET", "/api/health"), ("HEAD", "/api/health")}
RETRY_AFTER_MS = 500


def has_body(scope: Scope) -> bool:
    """Whether the request declares a body: a Content-Length over 0, or a Transfer-Encoding."""
    headers = dict(scope.get("headers") or [])
    if b"transfer-encoding" in headers:
        return True
    length = headers.get(b"content-length", b"").strip()
    return length.isdigit() and int(length) > 0


class Admission:
    """The shared counts. Thread-safe; one per app (``app.state.admission``)."""

    def __init__(self, limit: int, max_receiving: int) -> None:
        self.limit = limit
        self.max_receiving = max_receiving
        self._lock = threading.Lock()
        self._in_flight = 0
        self._receiving = 0
        self.draining = False
        self.refused = 0

    @property
    def in_flight(self) -> int:
        """Requests holding a handling slot (their body, if any, complete)."""
        with self._lock:
            return self._in_flight

    @property
    def receiving(self) -> int:
        """Admitted requests whose body is still arriving."""
        with self._lock:
            return self._receiving

    @property
    def active(self) -> int:
        """Every admitted request not yet answered: what a drain waits for."""
        with self._lock:
            return self._in_flight + self._receiving

    def start_draining(self) -> None:
        """From now on every new request (except liveness) gets 503."""
        self.draining = True

    def _overloaded(self) -> OverloadedError:
        self.refused += 1
        return OverloadedError(
            f"the server is handling {self._in_flight} requests, as many as it accepts "
            "(MAE_MAX_IN_FLIGHT); retry in a moment", retry_after_ms=RETRY_AFTER_MS)

    def try_enter(self, with_body: bool) -> ShuttingDownError | OverloadedError | None:
        """Count a request in (``receiving`` if ``with_body``, else ``in_flight``); or return
        the error that refuses it."""
        with self._lock:
            if self.draining:
                self.refused += 1
                return ShuttingDownError(
                    "the server is shutting down; retry in a moment (another instance, or this "
                    "one after its restart, will answer)")
            if self._in_flight >= self.limit:
                return self._overloaded()
            if not with_body:
                self._in_flight += 1
                return None
            if self._receiving >= self.max_receiving:
                self.refused += 1
                return OverloadedError(
                    f"the server is receiving {self._receiving} request bodies, as many as it "
                    "accepts (MAE_MAX_RECEIVING); retry in a moment", retry_after_ms=RETRY_AFTER_MS)
            self._receiving += 1
            return None

    def body_complete(self) -> OverloadedError | None:
        """Move a receiving request to a handling slot; or return the 503 if none is free (it
        then stays receiving until ``leave``). Not refused for draining: it was admitted before."""
        with self._lock:
            if self._in_flight >= self.limit:
                return self._overloaded()
            self._receiving -= 1
            self._in_flight += 1
            return None

    def leave(self, handling: bool) -> None:
        """Count a request out: from ``in_flight`` if it held a handling slot, else ``receiving``."""
        with self._lock:
            if handling:
                self._in_flight -= 1
            else:
                self._receiving -= 1


class AdmissionMiddleware:
    """ASGI middleware applying an ``Admission`` to every HTTP request."""

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope.get("method"), scope.get("path")) in EXEMPT:
            await self.app(scope, receive, send)
            return
        with_body = has_body(scope)
        refusal = self.admission.try_enter(with_body)
        if refusal is not None:
            await send_error(send, refusal)
            return
        handling = not with_body
        refused: OverloadedError | None = None  # no handling slot when the body completed
        started = False

        async def tracked_receive() -> Message:
            nonlocal handling, refused
            if refused is not None:
                return {"type": "http.disconnect"}
            message = await receive()
            if (not handling and not started and message["type"] == "http.request"
                    and not message.get("more_body", False)):
                refused = self.admission.body_complete()
                if refused is not None:
                    return {"type": "http.disconnect"}
                handling = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refused is not None and not started:
                return  # the app's answer to the "disconnect" is replaced by the 503
            started = True
            if message["type"] == "http.response.start" and self.admission.draining:
                # no keep-alive past a drain: the client opens its next request elsewhere
                # instead of having it reset when the process exits
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            try:
                await self.app(scope, tracked_receive, tracked_send)
            except Exception:
                if refused is None:
                    raise
            if refused is not None and not started:
                await send_error(send, refused)
        except asyncio.CancelledError:
            # cancelled by the server at the end of a drain: answer 503 if nothing was sent yet
            if self.admission.draining and not started:
                await send_error(send, ShuttingDownError(
                    "the server shut down before this request finished; send it again"))
            raise
        finally:
            self.admission.leave(handling)
