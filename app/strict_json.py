"""JSON request bodies with finite numbers only.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON: a job stored
with ``warmup_epochs: Infinity`` would make every page that embeds it unparsable. Routers whose
operations take a JSON body use ``StrictJSONRoute``, which answers 422 naming the field before
the body reaches validation.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Coroutine

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

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


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


class StrictJSONRoute(APIRoute):
    """An APIRoute that refuses non-finite numbers in a JSON body with a 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            if request.method not in ("GET", "HEAD", "OPTIONS") and _is_json(request):
                problem = find_non_finite(await request.body())  # cached for the handler
                if problem:
                    return JSONResponse(error_body(422, "invalid_parameter", problem,
                                                   fields=[{"field": problem.split(" is ")[0],
                                                            "message": problem}]),
                                        status_code=422)
            return await handler(request)

        return route
