"""The feature explorer (``/features``): a dataset's embeddings under a checkpoint's frozen
encoder, projected to 2-D, with thumbnails and an image's nearest neighbours."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from mae_core.errors import UnknownModelError
from mae_core.train.data import find_images
from mae_service.features import (
    MAX_IMAGES,
    FeatureStore,
    embed_images,
    nearest,
    project,
    umap_available,
)
from mae_service.jobs import find_dataset, list_datasets

from ..deps import RegistryDep, SettingsDep
from ..images import decode_image
from ..registry import ModelRegistry
from ..schemas import ErrorResponse
from ..templating import templates

router = APIRouter(tags=["features"])
ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorResponse, "description": "unknown checkpoint, dataset or option"}}
THUMB_PX = 96
Pool = Literal["cls", "mean"]


def get_features(request: Request) -> FeatureStore:
    return request.app.state.features


FeaturesDep = Annotated[FeatureStore, Depends(get_features)]


class FeatureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checkpoint: str = Field(description="any checkpoint id from GET /api/checkpoints (encoder-only ones too)")
    dataset: str = Field(description="a dataset id from GET /api/datasets")
    pool: Pool = Field("cls", description="cls token, or the mean of the patch tokens")


def _weights(registry: ModelRegistry, checkpoint: str) -> Path:
    info = registry.checkpoints().get(checkpoint)
    if info is None or info.error:
        raise UnknownModelError(f"no usable checkpoint {checkpoint!r}; GET /api/checkpoints lists them")
    return info.path


@router.get("/features", response_class=HTMLResponse, include_in_schema=False, name="features_page")
def features_page(request: Request, registry: RegistryDep, settings: SettingsDep) -> HTMLResponse:
    checkpoints = [i for i, info in registry.checkpoints().items() if not info.error]
    datasets = [{"id": d.id, "num_images": d.num_images} for d in list_datasets(settings.data_roots)]
    config = {"checkpoints": checkpoints, "default": registry.default_id, "datasets": datasets,
              "projections": ["pca", "umap"] if umap_available() else ["pca"]}
    return templates.TemplateResponse(request, "features.html", {"page_config": config})


@router.post("/api/features", status_code=202, responses=ERRORS,
             summary="Start embedding a dataset with a checkpoint's encoder (cached once computed)")
def start_features(body: FeatureRequest, registry: RegistryDep, settings: SettingsDep,
                   features: FeaturesDep) -> dict[str, Any]:
    weights = _weights(registry, body.checkpoint)
    root = find_dataset(settings.data_roots, body.dataset).path
    key = features.key(weights, root, body.pool)
    features.start(key, weights, root, body.pool, settings.device)
    return _status(features, key)


@router.get("/api/features", responses=ERRORS,
            summary="The 2-D map of a dataset's embeddings (or the progress while they compute)")
def get_feature_map(registry: RegistryDep, settings: SettingsDep, features: FeaturesDep,
                    checkpoint: str, dataset: str, pool: Pool = "cls",
                    projection: Literal["pca", "umap"] = "pca") -> dict[str, Any]:
    weights = _weights(registry, checkpoint)
    root = find_dataset(settings.data_roots, dataset).path
    key = features.key_for(weights, root, pool)
    embeddings = features.cached(key)
    if embeddings is None:
        return _status(features, key)
    coords, info = project(embeddings.vectors, projection)
    points = [{"index": i, "x": float(x), "y": float(y), "file": embeddings.files[i],
               "class": embeddings.classes[embeddings.labels[i]] if embeddings.labels[i] >= 0 else None}
              for i, (x, y) in enumerate(coords)]
    return {"state": "ready", "checkpoint": checkpoint, "dataset": dataset, "pool": pool,
            "features": "cls token of the unmasked encoder" if pool == "cls"
            else "mean of the unmasked encoder's patch tokens",
            "projection": info, "dim": int(embeddings.vectors.shape[1]), "classes": embeddings.classes,
            "num_images": len(points), "capped_at": MAX_IMAGES, "points": points}


@router.get("/api/features/thumbnail", responses=ERRORS, summary="A dataset image as a small JPEG")
def thumbnail(settings: SettingsDep, dataset: str,
              index: Annotated[int, Query(ge=0, lt=MAX_IMAGES)]) -> Response:
    root = find_dataset(settings.data_roots, dataset).path
    files = find_images(root)
    if index >= len(files):
        raise HTTPException(404, f"dataset {dataset} has {len(files)} images; index {index} is past the end")
    with Image.open(files[index]) as img:
        img.draft("RGB", (THUMB_PX * 2, THUMB_PX * 2))
        small = img.convert("RGB")
        small.thumbnail((THUMB_PX, THUMB_PX))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=85)
    return Response(out.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


@router.post("/api/features/neighbours", responses=ERRORS,
             summary="The k dataset images nearest to an uploaded one (cosine similarity)")
async def neighbours(
    request: Request, registry: RegistryDep, settings: SettingsDep, features: FeaturesDep,
    image: Annotated[UploadFile, File()], checkpoint: Annotated[str, Form()],
    dataset: Annotated[str, Form()], pool: Annotated[Pool, Form()] = "cls",
    k: Annotated[int, Form(ge=1, le=50)] = 8,
) -> dict[str, Any]:
    weights = _weights(registry, checkpoint)
    root = find_dataset(settings.data_roots, dataset).path
    embeddings = features.cached(features.key(weights, root, pool))
    if embeddings is None:
        raise HTTPException(409, "embed the dataset first (POST /api/features) and wait until it is ready")
    data = await image.read()
    picture = await anyio.to_thread.run_sync(
        lambda: decode_image(data, image.content_type, **settings.decode_limits),
        limiter=request.app.state.decode_limiter)
    query = await anyio.to_thread.run_sync(
        lambda: embed_images(features.model_for(weights), [picture], pool)[0])
    found = nearest(embeddings.vectors, query, k)
    return {"pool": pool, "neighbours": [
        {"index": i, "similarity": round(s, 4), "file": embeddings.files[i],
         "class": embeddings.classes[embeddings.labels[i]] if embeddings.labels[i] >= 0 else None,
         "thumbnail": f"/api/features/thumbnail?dataset={dataset}&index={i}"} for i, s in found]}


def _status(features: FeatureStore, key: str) -> dict[str, Any]:
    if features.cached(key) is not None:
        return {"state": "ready"}
    progress = features.progress(key)
    if progress is None:
        return {"state": "not_computed"}
    if progress["error"]:
        return {"state": "failed", "error": progress["error"]}
    return {"state": "computing", "done": progress["done"], "total": progress["total"]}
