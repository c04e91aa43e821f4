"""Request-line and header limits for uvicorn's httptools parser, which has none of its own.

uvicorn keeps every header line the parser reports, before any middleware runs: 128 MiB of
``X-h: v`` lines on one connection took +1.9 GB. ``limited_httptools_protocol`` counts the bytes
(URL included) and lines of each request as they are parsed; past either limit the connection is
answered 431 and closed at once, and nothing more of it is kept.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadersTooLarge(Exception):
    """Raised inside a parser callback; uvicorn's parser-error path then closes the connection."""


def limited_httptools_protocol(max_bytes: int, max_count: int) -> type[HttpToolsProtocol]:
    """An ``HttpToolsProtocol`` subclass refusing requests over ``max_bytes`` of request line
    and headers or ``max_count`` header lines (``uvicorn.Config(http=...)``)."""

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_bytes = 0
            self._header_count = 0
            self._refusal: str | None = None

        def on_url(self, url: bytes) -> None:
            self._count(len(url), 0)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4, 1)
            super().on_header(name, value)

        def _count(self, size: int, lines: int) -> None:
            self._header_bytes += size
            self._header_count += lines
            if self._header_bytes > max_bytes:
                self._refusal = (f"the request line and headers are over {max_bytes} bytes "
                                 "(MAE_MAX_HEADER_BYTES); send fewer or shorter headers")
            elif self._header_count > max_count:
                self._refusal = (f"the request has over {max_count} header lines "
                                 "(MAE_MAX_HEADERS); send fewer headers")
            if self._refusal is not None:
                self.headers = []  # drop what was kept; the connection is about to close
                raise HeadersTooLarge(self._refusal)

        def send_400_response(self, msg: str) -> None:
            refusal = getattr(self, "_refusal", None)
            if refusal is None:
                super().send_400_response(msg)
                return
            body = refusal.encode("ascii")
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
            self.transport.close()

        def data_received(self, data: Any) -> None:
            if getattr(self, "_refusal", None) is not None:
                return  # refused and closing: parse nothing more
            super().data_received(data)

    return LimitedHttpToolsProtocol
