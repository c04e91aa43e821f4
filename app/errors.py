"""Every error the service returns, mapped to an HTTP status in this one place.

Errors are JSON: ``{"error": <kind>, "status": <code>, "message": <what to change>}`` plus
``fields`` for request-validation errors. ``mae_core`` raises typed exceptions; the app adds the
few that only exist at the HTTP layer (too large, queue full).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from mae_core.errors import (
    CheckpointError,
    DecoderMissingError,
    ImageDecodeError,
    InvalidParameterError,
    MAEError,
    UnknownModelError,
    UnsupportedImageError,
)
from mae_service.downloads import DownloadStateError
from mae_service.jobs.store import StoreUnavailable

log = logging.getLogger(__name__)


class AppError(Exception):
    """An error that only exists at the HTTP layer."""


class PayloadTooLargeError(AppError):
    """The upload (bytes) or the decoded image (pixels) exceeds the configured limit."""


class BodyTimeoutError(AppError):
    """The request body stalled or arrived too slowly (MAE_BODY_IDLE_TIMEOUT_S)."""


class ServiceUnavailableError(AppError):
    """The service cannot take the request now (worker stopped, shutting down, overloaded);
    the client should retry after ``retry_after_ms`` milliseconds."""

    def __init__(self, message: str, retry_after_ms: int = 1000) -> None:
        super().__init__(message)
        self.retry_after_ms = max(1, int(retry_after_ms))


class QueueFullError(ServiceUnavailableError):
    """Too many reconstruction requests are waiting."""


class OverloadedError(ServiceUnavailableError):
    """Too many requests are being handled (MAE_MAX_IN_FLIGHT) or receiving their body
    (MAE_MAX_RECEIVING) at once."""


class ShuttingDownError(ServiceUnavailableError):
    """The server is draining before it exits; new requests are refused."""


def retry_headers(retry_after_ms: int) -> dict[str, str]:
    """``Retry-After`` (whole seconds, at least 1, as HTTP defines it) and ``Retry-After-Ms``."""
    return {"Retry-After": str(max(1, math.ceil(retry_after_ms / 1000))),
            "Retry-After-Ms": str(int(retry_after_ms))}


# (exception class, HTTP status, error kind); looked up along the exception's MRO, so a
# subclass listed here wins over its base.
STATUS_TABLE: dict[type[BaseException], tuple[int, str]] = {
    ImageDecodeError: (400, "unreadable_image"),
    UnknownModelError: (422, "unknown_model"),
    DecoderMissingError: (409, "decoder_missing"),
    DownloadStateError: (409, "download_state"),
    PayloadTooLargeError: (413, "too_large"),
    BodyTimeoutError: (408, "body_timeout"),
    UnsupportedImageError: (415, "unsupported_image"),
    InvalidParameterError: (422, "invalid_parameter"),
    CheckpointError: (422, "checkpoint_unusable"),
    QueueFullError: (503, "queue_full"),
    OverloadedError: (503, "overloaded"),
    ShuttingDownError: (503, "shutting_down"),
    ServiceUnavailableError: (503, "unavailable"),
    StoreUnavailable: (503, "store_unavailable"),
    MAEError: (500, "internal_error"),
}

# What to do about a bad form field, appended to pydantic's message.
FIELD_HINTS = {
    "image": "attach the picture as a multipart file field named 'image'",
    "mask_ratio": "send the fraction of patches to remove, strictly between 0 and 1 (e.g. 0.75)",
    "seed": "send a non-negative integer, or leave the field out to draw a random mask",
    "strategy": "send random, block or grid",
    "resize": "send crop or keep-aspect",
    "model": "send a checkpoint id from GET /api/models",
    "mask": "send a JSON list of rows of 0/1, one per patch (1 = removed)",
}


def status_for(exc: BaseException) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in STATUS_TABLE:
            return STATUS_TABLE[cls]
    return 500, "internal_error"


def error_body(status: int, kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": kind, "status": status, "message": message, **extra}


def _error_parts(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    status, kind = status_for(exc)
    retry_ms = getattr(exc, "retry_after_ms", None)  # ServiceUnavailableError, StoreUnavailable
    if status >= 500 and retry_ms is None:
        log.error("request failed: %s", exc, exc_info=exc)
    headers = retry_headers(retry_ms) if retry_ms is not None else {}
    return status, error_body(status, kind, str(exc)), headers


def error_response(exc: BaseException) -> JSONResponse:
    status, body, headers = _error_parts(exc)
    return JSONResponse(body, status_code=status, headers=headers)


async def send_error(send: Send, exc: BaseException) -> None:
    """Answer with ``exc``'s JSON error straight through ASGI, for middleware that answers before
    the app runs. The connection is closed after it, since the request body may be unread."""
    status, body, headers = _error_parts(exc)
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
           (b"connection", b"close")]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    parts, fields = [], []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        name = ".".join(loc) or "request"
        msg = str(err.get("msg", "invalid value"))
        hint = FIELD_HINTS.get(loc[0] if loc else "")
        parts.append(f"{name}: {msg}" + (f"; {hint}" if hint else ""))
        fields.append({"field": name, "message": msg})
    return "; ".join(parts), fields


COMMON_ERRORS = {
    "400": "the request body could not be parsed (not JSON / not multipart as declared)",
    "413": "the request body is over MAE_MAX_UPLOAD_BYTES",
    "503": "overloaded (MAE_MAX_IN_FLIGHT, MAE_MAX_RECEIVING) or shutting down; retry after Retry-After seconds "
           "(Retry-After-Ms: milliseconds)",
}


def document_common_errors(app: FastAPI, exempt: set[tuple[str, str]]) -> None:
    """Add to the OpenAPI schema the errors the middleware can give any operation: 503 to every
    operation but the ``exempt`` (method, path) pairs, 400 and 413 to those with a body."""
    from .schemas import ErrorResponse

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorResponse", ErrorResponse.model_json_schema())
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                responses = operation.setdefault("responses", {})
                codes = [] if (method.upper(), path) in exempt else ["503"]
                if "requestBody" in operation:
                    codes += ["400", "413"]
                for code in codes:
                    responses.setdefault(code, {"description": COMMON_ERRORS[code], "content": content})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""

    async def on_app_error(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def on_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, fields = _validation_message(list(exc.errors()))
        return JSONResponse(error_body(422, "invalid_parameter", message, fields=fields), status_code=422)

    async def on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(exc.status_code, kind, str(exc.detail)),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body(500, "internal_error", f"internal error: {type(exc).__name__}"),
                            status_code=500)

    app.add_exception_handler(MAEError, on_app_error)
    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_unexpected)
