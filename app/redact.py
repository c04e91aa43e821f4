"""Clients see dataset and checkpoint names, never the server's folders.

``PathScrubMiddleware`` rewrites each JSON, HTML or text answer (single-body ones, which is every
page and API answer; streamed files pass untouched) so that the configured folders read as
labels: ``/data/images/cats`` -> ``<datasets>/cats``, the data folder -> ``<data>``, checkpoint
folders -> ``<checkpoints>``. Error messages, logs, cards and pages are all covered by this one
step, whatever wrote the path into them.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TEXT_TYPES = (b"application/json", b"text/html", b"text/plain")
MIN_NEEDLE = 6  # shorter folder names ("/srv") could match inside base64 image data


def replacements(labelled: list[tuple[Path, str]]) -> list[tuple[bytes, bytes]]:
    """(path bytes, label bytes), each folder as configured and resolved, longest first."""
    pairs: dict[bytes, bytes] = {}
    for folder, label in labelled:
        for form in {str(folder), os.path.realpath(folder), str(Path(folder).absolute())}:
            form = form.rstrip("/")
            if len(form) >= MIN_NEEDLE:
                pairs.setdefault(form.encode(), label.encode())
    return sorted(pairs.items(), key=lambda p: -len(p[0]))


def scrub(data: bytes, pairs: list[tuple[bytes, bytes]]) -> bytes:
    for needle, label in pairs:
        if needle in data:
            data = data.replace(needle, label)
    return data


class PathScrubMiddleware:
    def __init__(self, app: ASGIApp, folders: list[tuple[Path, str]]) -> None:
        self.app = app
        self.pairs = replacements(folders)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.pairs:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def scrubbing_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                kind = headers.get(b"content-type", b"").split(b";")[0].strip()
                if kind in TEXT_TYPES and b"content-length" in headers:
                    start = message  # held until the body is complete
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = scrub(b"".join(chunks), self.pairs)
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, scrubbing_send)
