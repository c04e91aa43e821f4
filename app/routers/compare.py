"""``POST /reconstruct/compare``: one image, one mask, 2-4 checkpoints side by side."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from mae_core import PreparedImage, Reconstructor
from mae_core.errors import DecoderMissingError, InvalidParameterError
from mae_core.masking import MaskRequest

from ..batcher import Job, JobResult
from ..deps import BatcherDep, RegistryDep, SettingsDep
from ..images import decode_image
from ..schemas import CompareResponse, ErrorResponse
from ..reconstruct_form import ImageField, ResizeField, finite_or_none, mask_request, panel_b64

router = APIRouter(tags=["reconstruct"])

MIN_MODELS, MAX_MODELS = 2, 4
MAX_ID_CHARS = 200  # as POST /reconstruct's `model`
ROW_PANELS = ("masked", "reconstruction", "pasted")  # the original is shared: sent once

_ERRORS = {
    400: "unreadable image (empty, truncated, garbage, not an image)",
    413: "upload too large (body bytes, or pixels read from the image header)",
    415: "unsupported file type (checked before decoding)",
    422: "fewer than 2 or more than 4 models, a model named twice, an unknown, unusable or "
         "encoder-only checkpoint, models on different patch grids, or a bad mask field",
    503: "queue full, too many requests in flight, shutting down, or the worker is not running",
}


def check_model_ids(ids: list[str]) -> list[str]:
    """2-4 distinct ids, or a 422 saying what to change."""
    ids = [i.strip() for i in ids]
    if not MIN_MODELS <= len(ids) <= MAX_MODELS:
        raise InvalidParameterError(
            f"compare takes {MIN_MODELS} to {MAX_MODELS} models (repeat the `model` field), got "
            f"{len(ids)}")
    if any(not i or len(i) > MAX_ID_CHARS for i in ids):
        raise InvalidParameterError(f"each `model` must be a checkpoint id of 1 to {MAX_ID_CHARS} "
                                    "characters (GET /api/models lists them)")
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidParameterError(f"model {', '.join(map(repr, repeated))} is named more than "
                                    "once; name each checkpoint once")
    return ids


def fit_to_models(picture: Any, models: dict[str, Reconstructor], resize: str,
                  ) -> tuple[tuple[int, int], dict[str, PreparedImage]]:
    """The image fitted to each model and the patch grid they share (422 when they differ:
    one mask cannot cover two grids)."""
    prepared = {mid: r.prepare_input(picture, resize) for mid, r in models.items()}
    grids = {mid: (int(p.tensor.shape[-2]) // models[mid].patch_size,
                   int(p.tensor.shape[-1]) // models[mid].patch_size) for mid, p in prepared.items()}
    if len(set(grids.values())) > 1:
        listed = ", ".join(f"{mid} {g[0]}x{g[1]}" for mid, g in grids.items())
        raise InvalidParameterError(
            f"these models cut the image into different patch grids ({listed}), so one mask "
            "cannot be shared; compare models with the same image size and patch size")
    return next(iter(grids.values())), prepared


def build_compare(results: list[JobResult], seed: int | None, wanted: MaskRequest,
                  resize: str, started: float) -> bytes:
    first = results[0].reconstruction
    rows = []
    for result in results:
        rec, model = result.reconstruction, result.reconstructor
        rows.append({
            "model": model.name,
            "metrics": {k: finite_or_none(rec.metrics[k]) for k in ("masked_psnr", "masked_mse")},
            "uses_target_stats": rec.uses_target_stats,
            "panels": {name: panel_b64(rec.panels[name], "png") for name in ROW_PANELS},
        })
    body = {
        "seed": seed,
        "strategy": "custom" if wanted.explicit is not None else wanted.strategy,
        "requested_mask_ratio": wanted.requested_ratio,
        "mask_ratio": first.mask_ratio,
        "resize": resize,
        "grid": list(first.mask.shape),
        "mask": first.mask.astype(int).tolist(),
        "original": panel_b64(first.original, "png"),
        "rows": rows,
        "server_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


@router.post(
    "/reconstruct/compare",
    response_model=CompareResponse,
    summary="The same image and mask through 2-4 checkpoints",
    description=(
        "Upload an image (`image`) and name 2-4 checkpoints (repeat `model`). The mask is drawn "
        "once on the patch grid (from `mask_ratio` + `strategy` + `seed`, or the explicit "
        "`mask`) and every model reconstructs the same removed patches; one row per model with "
        "the masked image, the reconstruction and the reconstruction with the visible patches "
        "pasted back (base64 PNG), and the masked-patch PSNR/MSE.\n\nExample: `curl -F "
        "image=@fox.jpg -F model=mae-lab-default -F model=my-run -F seed=2 "
        "http://127.0.0.1:8000/reconstruct/compare`"
    ),
    responses={code: {"model": ErrorResponse, "description": text} for code, text in _ERRORS.items()},
)
async def compare(
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    batcher: BatcherDep,
    image: ImageField,
    wanted: Annotated[MaskRequest, Depends(mask_request)],
    model: Annotated[list[str], Form(
        description="2-4 checkpoint ids from GET /api/models, one `model` field each",
        examples=[["mae-lab-default", "my-run"]])],
    resize: ResizeField = "crop",
) -> Any:
    started = time.perf_counter()
    ids = check_model_ids(model)
    data = await image.read()

    def prepare():  # resolve, load, decode and fit off the event loop, in one hop
        for mid in ids:
            try:
                registry.resolve(mid)
            except DecoderMissingError as exc:  # a 422 here: the choice of models is the error
                raise InvalidParameterError(f"{exc}; compare needs models that reconstruct") from None
        picture = decode_image(data, image.content_type, **settings.decode_limits)
        models = {mid: registry.get(mid) for mid in ids}
        grid, prepared = fit_to_models(picture, models, resize)
        shared, seed = wanted.on_grid(grid)
        return prepared, shared, seed

    prepared, shared, seed = await anyio.to_thread.run_sync(
        prepare, limiter=request.app.state.decode_limiter)
    futures = [asyncio.wrap_future(batcher.submit(
        Job(model_id=mid, image=prepared[mid], request=shared, resize=resize))) for mid in ids]
    results: list[JobResult] = list(await asyncio.gather(*futures))
    body = await anyio.to_thread.run_sync(build_compare, results, seed, wanted, resize, started)
    return Response(body, media_type="application/json")
