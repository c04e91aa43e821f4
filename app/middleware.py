"""A request-body size limit enforced before the multipart parser reads the body."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PayloadTooLargeError, error_body


class BodyLimitMiddleware:
    """Answer 413 for bodies over ``max_bytes``: at once when Content-Length says so, otherwise
    by raising PayloadTooLargeError (mapped to 413) as soon as the streamed body passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        limit_text = f"{self.max_bytes / 1e6:.1f} MB"
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            body = json.dumps(error_body(
                413, "too_large",
                f"the request body is {int(declared) / 1e6:.1f} MB; the limit is {limit_text} "
                "(MAE_MAX_UPLOAD_BYTES); send a smaller image",
            )).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLargeError(
                        f"the request body passed the {limit_text} limit (MAE_MAX_UPLOAD_BYTES); "
                        "send a smaller image"
                    )
            return message

        await self.app(scope, limited_receive, send)
