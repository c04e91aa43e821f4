"""``POST /reconstruct``: an uploaded image in, Figure 4 panels (JSON or one PNG) out."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from mae_core.figure import compose_figure, to_png_bytes
from mae_core.masking import MaskRequest

from ..attention_view import attention_payload
from ..reconstruct_form import (
    PANEL_ENCODERS, ImageField, ResizeField, finite_or_none, mask_request, panel_b64,
)
from ..batcher import Job, JobResult
from ..deps import BatcherDep, RegistryDep, SettingsDep
from ..images import decode_image
from ..schemas import ErrorResponse, ReconstructResponse

router = APIRouter(tags=["reconstruct"])

NORM_PIX_NOTE = (
    "This checkpoint predicts normalised pixels (norm_pix_loss). To display its output, each "
    "removed patch was given that patch's true mean and variance, information the model did not "
    "see, so brightness and contrast in removed areas come partly from the original."
)

_ERRORS = {
    400: "unreadable image (empty, truncated, garbage, not an image)",
    409: "the checkpoint cannot reconstruct (encoder-only)",
    413: "upload too large (body bytes, or pixels read from the image header)",
    415: "unsupported file type (checked before decoding)",
    422: "bad parameter: ratio outside (0, 1) or not finite, a ratio that removes no patch or "
         "every patch of the image's grid, unknown strategy, unknown or unusable checkpoint id, "
         "grid at a ratio other than 0.75, malformed mask",
    503: "queue full, too many requests in flight, shutting down, or the worker is not running; "
         "retry after Retry-After seconds (Retry-After-Ms: milliseconds)",
}


def wants_png(accept: str | None) -> bool:
    """True when the Accept header prefers image/png over application/json."""
    if not accept:
        return False
    quality: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        quality[media.lower()] = q
    png = quality.get("image/png", quality.get("image/*", 0.0))
    json_q = quality.get("application/json", quality.get("application/*", quality.get("*/*", 0.0)))
    return "image/png" in quality and png > 0 and png >= json_q and (
        "application/json" not in quality or png > json_q)


def render_json(result: JobResult, resize: str, started: float, panel_format: str = "png",
                extra: dict[str, Any] | None = None) -> bytes:
    """The JSON body, encoded here (off the event loop) rather than by FastAPI on it; the
    response model still documents it (and the tests check the body against it)."""
    body = {**build_response(result, resize, started, panel_format), **(extra or {})}
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def build_response(result: JobResult, resize: str, started: float,
                   panel_format: str = "png") -> dict[str, Any]:
    rec, model = result.reconstruction, result.reconstructor
    metrics = {k: finite_or_none(v) for k, v in rec.metrics.items()}
    for key in ("masked_mse", "visible_mse", "inference_ms"):
        metrics[key] = metrics.get(key) or 0.0
    names = list(rec.panels)
    encoded = PANEL_ENCODERS.map(lambda name: panel_b64(rec.panels[name], panel_format), names)
    panels = dict(zip(names, encoded))
    return {
        "model": model.name,
        "seed": rec.seed,
        "mask_ratio": rec.mask_ratio,
        "requested_mask_ratio": rec.requested_mask_ratio,
        "strategy": rec.strategy,
        "resize": resize,
        "grid": list(rec.mask.shape),
        "patch_size": model.patch_size,
        "image_size": [int(s) for s in rec.original.shape[:2]],
        "mask": rec.mask.astype(int).tolist(),
        "error_map": [[round(float(v), 3) for v in row] for row in rec.error_map],
        "metrics": metrics,
        "timing": {"queue_ms": round(result.queue_ms, 3), "batch_size": result.batch_size,
                   "server_ms": round((time.perf_counter() - started) * 1000, 3)},
        "uses_target_stats": rec.uses_target_stats,
        "note": NORM_PIX_NOTE if rec.uses_target_stats else None,
        "compute_dtype": model.compute_dtype,
        "panel_format": panel_format,
        "panels": panels,
    }


@router.post(
    "/reconstruct",
    response_model=ReconstructResponse,
    summary="Mask an image and reconstruct it",
    description=(
        "Upload an image (multipart field `image`); the server resizes it for the checkpoint, "
        "removes patches (by `mask_ratio` + `strategy` + `seed`, or exactly the explicit `mask`), "
        "reconstructs them and returns the paper's Figure 4 panels as base64 PNGs with the mask, a "
        "per-patch error map and metrics. Send `Accept: image/png` to get the four panels as one "
        "PNG instead.\n\nExample: `curl -F image=@fox.jpg -F mask_ratio=0.75 -F seed=2 "
        "http://127.0.0.1:8000/reconstruct`"
    ),
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
              "description": "JSON (default) or, with `Accept: image/png`, the four-panel figure"},
        **{code: {"model": ErrorResponse, "description": text} for code, text in _ERRORS.items()},
    },
)
async def reconstruct(
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    batcher: BatcherDep,
    image: ImageField,
    wanted: Annotated[MaskRequest, Depends(mask_request)],
    model: Annotated[str | None, Form(
        max_length=200, description="checkpoint id from GET /api/models; omit for the default",
        examples=["mae-lab-default"])] = None,
    panel_format: Annotated[Literal["png", "jpeg", "webp"], Form(
        description="encoding of the base64 panels: png (lossless, default), jpeg (fastest, "
        "what the web page uses) or webp", examples=["png"])] = "png",
    resize: ResizeField = "crop",
    attention: Annotated[bool, Form(
        description="also return the last encoder block's cls-to-patch attention per head and "
        "its head mean over the visible patches (`attention` in the reply; app/attention_view.py)",
        examples=[False])] = False,
) -> Any:
    started = time.perf_counter()
    data = await image.read()

    def resolve_and_decode():  # one thread hop for both (each hop costs ~0.1 ms)
        info = registry.resolve(model)
        picture = decode_image(data, image.content_type, **settings.decode_limits)
        reconstructor = registry.loaded(info)
        if reconstructor is not None:
            # Resize to the model's input here, in parallel with other requests' inference; the
            # worker's own prepare() then finds the image already fitted.
            picture = reconstructor.prepare_input(picture, resize)
        return info, picture

    info, picture = await anyio.to_thread.run_sync(resolve_and_decode,
                                                   limiter=request.app.state.decode_limiter)
    job = Job(model_id=info.id, image=picture, request=wanted, resize=resize)
    result: JobResult = await asyncio.wrap_future(batcher.submit(job))
    if wants_png(request.headers.get("accept")):
        png = await anyio.to_thread.run_sync(lambda: to_png_bytes(compose_figure(result.reconstruction)))
        rec = result.reconstruction
        headers = {"X-MAE-Model": info.id, "X-MAE-Seed": "" if rec.seed is None else str(rec.seed),
                   "Content-Disposition": 'inline; filename="reconstruction.png"'}
        return Response(png, media_type="image/png", headers=headers)
    extra = None
    if attention:  # attention maps (app/attention_view.py)
        extra = {"attention": await anyio.to_thread.run_sync(attention_payload, result, picture, resize)}
    body = await anyio.to_thread.run_sync(render_json, result, resize, started, panel_format, extra)
    return Response(body, media_type="application/json")
