"""JSON request bodies with finite numbers only.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON: a job stored
with ``warmup_epochs: Infinity`` would make every page that embeds it unparsable.
``StrictJSONMiddleware`` sits in front of every route of the app (one mechanism, so a new router
cannot forget it) and answers 422 naming the field before a JSON body reaches validation.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body


class NonFiniteNumber(ValueError):
    pass


class _Constant:
    def __init__(self, text: str) -> None:
        self.text = text


def _check(value: Any, where: str) -> Any:
    if isinstance(value, _Constant):
        raise NonFiniteNumber(f"{where or 'the body'} is {value.text}; JSON numbers must be finite: "
                              "send a finite number (or leave the field out for its default)")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]" if where else f"[{i}]")
    return value


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    for key, value in pairs:
        _check(value, key)
    return dict(pairs)


def find_non_finite(body: bytes) -> str | None:
    """The message for the first NaN/Infinity in a JSON ``body`` (None: none, or not JSON)."""
    try:
        _check(json.loads(body, parse_constant=_Constant, object_pairs_hook=_pairs), "")
    except NonFiniteNumber as exc:
        return str(exc)
    except ValueError:  # malformed JSON: FastAPI's own 422 explains it
        return None
    return None


def _is_json(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    kind = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


class StrictJSONMiddleware:
    """Refuse non-finite numbers in any JSON request body with a 422; other requests pass as sent.

    It goes inside ``BodyLimitMiddleware``, so the body it buffers is already size- and
    time-limited; the app then reads the same bytes from a replay.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS")
                or not _is_json(scope)):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        pending: list[Message] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # a disconnect: the app sees it as it came
                pending.append(message)
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = None if pending else find_non_finite(body)
        if problem:
            response = JSONResponse(error_body(422, "invalid_parameter", problem, fields=[
                {"field": problem.split(" is ")[0], "message": problem}]), status_code=422)
            await response(scope, receive, send)
            return
        replay = [{"type": "http.request", "body": body, "more_body": False}, *pending]

        async def replayed() -> Message:
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replayed, send)
