"""A request-body size limit enforced before (and while) anything reads the body."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PayloadTooLargeError, send_error


class BodyLimitMiddleware:
    """Answer 413 for bodies over ``max_bytes``, holding at most one chunk of the excess.

    A declared Content-Length over the limit is refused before anything is read. Whatever the
    header says (a lying Content-Length, or none with chunked encoding), the bytes actually
    received are counted and the body is cut off as soon as it passes the limit: the app sees a
    disconnect, whatever it answers is dropped, and the client gets the 413 and a closed
    connection.
    """

    def __init__(self, app: ASGIApp, max_bytes: int,
                 per_path: dict[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
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
        cut_off = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, cut_off
            if cut_off:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut_off = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if cut_off and not started:
                return  # the app's answer to the cut-off body is replaced by the 413
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not cut_off:
                raise
        if cut_off and not started:
            await send_error(send, self._too_large(f"over {limit / 2**20:.2f} MiB", limit, setting))
