"""A request-body size limit and read deadline, enforced before (and while) anything reads the body."""

from __future__ import annotations

import time

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import AppError, BodyTimeoutError, PayloadTooLargeError, send_error


class BodyLimitMiddleware:
    """Answer 413 for bodies over ``max_bytes``, holding at most one chunk of the excess.

    A declared Content-Length over the limit is refused before anything is read. Whatever the
    header says (a lying Content-Length, or none with chunked encoding), the bytes actually
    received are counted and the body is cut off as soon as it passes the limit: the app sees a
    disconnect, whatever it answers is dropped, and the client gets the 413 and a closed
    connection.

    Slow bodies are cut off the same way, with 408: a wait of over ``idle_timeout_s`` for the
    next piece, or, once ``idle_timeout_s`` has passed, an average below ``min_rate`` bytes a
    second. A client trickling one byte at a time so holds its ``MAE_MAX_RECEIVING`` slot (never
    a handling slot: see ``app.admission``) for seconds, not for as long as it likes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int,
                 per_path: dict[str, tuple[int, str]] | None = None,
                 idle_timeout_s: float = 15.0, min_rate: float = 1024.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s
        self.min_rate = min_rate
        # exact POST paths with their own limit and setting name (checkpoint uploads)
        self.per_path = per_path or {}

    def _limit(self, scope: Scope) -> tuple[int, str]:
        return self.per_path.get(scope.get("path", ""), (self.max_bytes, "MAE_MAX_UPLOAD_BYTES"))

    @staticmethod
    def _too_large(size_text: str, limit: int, setting: str) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"the request body is {size_text}; the limit is {limit / 2**20:.2f} MiB "
            f"({setting}); send a smaller file"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit, setting = self._limit(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(send, self._too_large(f"{int(declared) / 2**20:.2f} MiB", limit, setting))
            return
        received = 0
        cut_off: AppError | None = None
        started = False
        body_done = False
        began = time.monotonic()

        async def limited_receive() -> Message:
            nonlocal received, cut_off, body_done
            if cut_off is not None:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()  # after the body: only the disconnect is left to wait for
            with anyio.move_on_after(self.idle_timeout_s) as waited:
                message = await receive()
            if waited.cancelled_caught:
                cut_off = self._too_slow(f"no part of the request body arrived for "
                                         f"{self.idle_timeout_s:g} s")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                elapsed = time.monotonic() - began
                if received > limit:
                    cut_off = self._too_large(f"over {limit / 2**20:.2f} MiB", limit, setting)
                    return {"type": "http.disconnect"}
                if not body_done and elapsed > self.idle_timeout_s and received < self.min_rate * elapsed:
                    cut_off = self._too_slow(f"the request body arrived at {received / elapsed:.0f} "
                                             f"bytes/s, under {self.min_rate:g}")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if cut_off is not None and not started:
                return  # the app's answer to the cut-off body is replaced by the 413
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if cut_off is None:
                raise
        if cut_off is not None and not started:
            await send_error(send, cut_off)

    def _too_slow(self, what: str) -> BodyTimeoutError:
        return BodyTimeoutError(f"{what} (MAE_BODY_IDLE_TIMEOUT_S is {self.idle_timeout_s:g} s); "
                                "send the whole body at once")
