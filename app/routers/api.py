"""Service status and the checkpoint list: ``/api/health``, ``/api/ready``, ``/api/models``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

import mae_core

from ..checkpoint_cards import models_payload
from ..deps import RegistryDep
from ..schemas import HealthResponse, ModelsResponse, ReadyResponse

router = APIRouter(prefix="/api", tags=["service"])


@router.get("/health", response_model=HealthResponse, summary="Liveness: always 200 while the process runs")
def health(request: Request) -> HealthResponse:
    batcher = getattr(request.app.state, "batcher", None)
    return HealthResponse(status="ok", version=mae_core.__version__,
                          worker_alive=bool(batcher and batcher.alive),
                          pending=batcher.pending if batcher else 0)


@router.get(
    "/ready", response_model=ReadyResponse,
    summary="Readiness: 200 once the default checkpoint has loaded, 503 before or without it",
    responses={503: {"model": ReadyResponse, "description": "loading, missing or failed"}},
)
def ready(request: Request, registry: RegistryDep) -> JSONResponse:
    batcher = getattr(request.app.state, "batcher", None)
    if batcher is not None and registry.default_appeared():
        batcher.call_soon(registry.load_default)  # a default trained or copied in after start-up
    body = ReadyResponse(
        ready=registry.default_state == "ready", state=registry.default_state,
        message=registry.default_message, default_model=registry.default_id,
        loaded=registry.loaded_ids(),
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/models", response_model=ModelsResponse,
            summary="Checkpoints in the folder, with their cards and whether they can reconstruct")
def models(registry: RegistryDep) -> ModelsResponse:
    return models_payload(registry)
