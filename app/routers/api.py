"""Service status and the checkpoint list: ``/api/health``, ``/api/ready``, ``/api/models``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

import mae_core

from ..deps import RegistryDep
from ..registry import ModelRegistry, describe_card
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


def models_payload(registry: ModelRegistry) -> ModelsResponse:
    infos = registry.checkpoints()
    loaded = set(registry.loaded_ids())
    entries = [
        {"id": info.id, "file": info.path.name, "card": info.card, "summary": describe_card(info.card),
         "can_reconstruct": info.can_reconstruct and not info.error, "error": info.error,
         "loaded": info.id in loaded, "default": info.id == registry.default_id}
        for info in infos.values()
    ]
    return ModelsResponse.model_validate({
        "default_model": registry.default_id, "default_present": registry.default_id in infos,
        "default_state": registry.default_state, "default_message": registry.default_message,
        "models": entries,
        "cache": {"size": registry.cache_size, "loaded": registry.loaded_ids(),
                  "policy": "least recently used; the default checkpoint is never evicted",
                  "max_tokens_per_image": registry.max_tokens},
    })


@router.get("/models", response_model=ModelsResponse,
            summary="Checkpoints in the folder, with their cards and whether they can reconstruct")
def models(registry: RegistryDep) -> ModelsResponse:
    return models_payload(registry)
