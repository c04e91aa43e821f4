"""The Models page and its API: list, download, cancel, delete, upload, measure and export
checkpoints (``/models``, ``/api/checkpoints``)."""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.background import BackgroundTask

from mae_core import load_model
from mae_core.checkpoint.export import export_model
from mae_core.errors import UnknownModelError
from mae_service.downloads import DownloadManager
from mae_service.quality import measure_on_samples, record_in_card
from mae_service.uploads import publish_upload

from ..checkpoint_cards import checkpoint_cards
from ..deps import RegistryDep, SettingsDep
from ..schemas import ErrorResponse
from ..templating import STATIC_DIR, templates

log = logging.getLogger(__name__)
router = APIRouter(tags=["checkpoints"])
ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "already downloading / downloaded / not running"},
    422: {"model": ErrorResponse, "description": "unknown id or unusable file"},
}
EXPORT_SUFFIX = {"hf": ".zip", "timm": ".safetensors", "official": ".pth"}


def get_downloads(request: Request) -> DownloadManager:
    return request.app.state.downloads


DownloadsDep = Annotated[DownloadManager, Depends(get_downloads)]


@router.get("/models", response_class=HTMLResponse, include_in_schema=False, name="models_page")
def models_page(request: Request, registry: RegistryDep, downloads: DownloadsDep,
                settings: SettingsDep) -> HTMLResponse:
    cards = checkpoint_cards(registry, downloads, settings)
    return templates.TemplateResponse(request, "models.html", {
        "cards": cards, "page_config": {"cards": cards,
                                        "maxUploadBytes": settings.max_checkpoint_upload_bytes}})


@router.get("/api/checkpoints", summary="Every checkpoint: present ones and the downloadable catalog")
def list_checkpoint_cards(registry: RegistryDep, downloads: DownloadsDep,
                          settings: SettingsDep) -> dict[str, Any]:
    return {"default_model": registry.default_id,
            "checkpoints": checkpoint_cards(registry, downloads, settings)}


@router.post("/api/checkpoints/{checkpoint_id}/download", status_code=202, responses=ERRORS,
             summary="Start (or resume) downloading a catalog entry in the background")
def start_download(checkpoint_id: str, downloads: DownloadsDep) -> dict[str, Any]:
    return downloads.start(checkpoint_id).to_dict()


@router.post("/api/checkpoints/{checkpoint_id}/cancel", responses=ERRORS,
             summary="Stop a running download (its partial file is kept for a resume)")
def cancel_download(checkpoint_id: str, downloads: DownloadsDep) -> dict[str, Any]:
    return downloads.cancel(checkpoint_id).to_dict()


@router.delete("/api/checkpoints/{checkpoint_id}", status_code=204, responses=ERRORS,
               summary="Delete a downloaded, uploaded or trained model (never the embedded default)")
def delete_checkpoint(checkpoint_id: str, registry: RegistryDep, downloads: DownloadsDep,
                      settings: SettingsDep) -> Response:
    card = _present_card(checkpoint_id, registry, downloads, settings)
    if not card["deletable"]:
        raise HTTPException(409, f"{checkpoint_id} ({card['kind']}) lives in the server's "
                                 "checkpoint folder; only downloaded, uploaded and trained models "
                                 "can be deleted here")
    path = registry.checkpoints()[checkpoint_id].path
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)
    if checkpoint_id in downloads.catalog:
        downloads.discard(checkpoint_id)
    log.info("deleted checkpoint %s", checkpoint_id)
    return Response(status_code=204)


@router.post("/api/checkpoints", status_code=201, responses={**ERRORS, 413: {"model": ErrorResponse}},
             summary="Upload a checkpoint (.safetensors, official .pth, Hugging Face model.safetensors "
                     "+ config.json); it is loaded safely and validated before it is published")
async def upload_checkpoint(
    settings: SettingsDep, registry: RegistryDep, downloads: DownloadsDep,
    file: Annotated[UploadFile, File(description="the weights file")],
    name: Annotated[str | None, Form(description="id for the checkpoint (default: the file name)")] = None,
    config: Annotated[UploadFile | None, File(description="Hugging Face config.json or an MAE Lab "
                                                          "card, optional")] = None,
) -> dict[str, Any]:
    filename = Path(file.filename or "upload").name
    wanted = name or Path(filename).stem
    companion = await config.read() if config is not None else None
    folder = settings.data.checkpoints
    spooled = await anyio.to_thread.run_sync(_spool_to_disk, file, folder)
    try:
        path = await anyio.to_thread.run_sync(
            lambda: publish_upload(spooled, filename, wanted, folder, downloads.folder, companion))
    finally:
        spooled.unlink(missing_ok=True)
    log.info("uploaded checkpoint %s (%s)", path.stem, filename)
    return next(c for c in checkpoint_cards(registry, downloads, settings) if c["id"] == path.stem)


@router.post("/api/checkpoints/{checkpoint_id}/measure", responses=ERRORS,
             summary="Measure the masked-patch PSNR on the bundled sample photos and record it")
async def measure_checkpoint(checkpoint_id: str, registry: RegistryDep, settings: SettingsDep) -> dict[str, Any]:
    info = registry.resolve(checkpoint_id)
    quality = await anyio.to_thread.run_sync(
        lambda: measure_on_samples(info.path, STATIC_DIR / "samples", settings.device))
    return {"id": checkpoint_id, "samples_quality": quality,
            "recorded": record_in_card(info.path, quality)}


@router.get("/api/checkpoints/{checkpoint_id}/export", responses=ERRORS,
            summary="Download a checkpoint for transformers (hf, a zip), timm or the official code")
async def export_checkpoint(checkpoint_id: str, registry: RegistryDep,
                            to: Annotated[Literal["hf", "timm", "official"], Query()] = "hf") -> FileResponse:
    infos = registry.checkpoints()
    if checkpoint_id not in infos or infos[checkpoint_id].error:
        raise UnknownModelError(f"no usable checkpoint {checkpoint_id!r}; GET /api/checkpoints lists them")
    work = Path(tempfile.mkdtemp(prefix="mae-export-"))
    path = await anyio.to_thread.run_sync(_export_file, infos[checkpoint_id].path, work, checkpoint_id, to)
    return FileResponse(path, filename=path.name, media_type="application/octet-stream",
                        background=BackgroundTask(shutil.rmtree, work, True))


def _export_file(weights: Path, work: Path, checkpoint_id: str, to: str) -> Path:
    out = work / f"{checkpoint_id}-{to}{EXPORT_SUFFIX[to]}"
    if to != "hf":
        return export_model(load_model(weights), out, to)
    folder = export_model(load_model(weights), work / f"{checkpoint_id}-hf", "hf")
    with zipfile.ZipFile(out, "w") as archive:
        for member in sorted(folder.iterdir()):
            archive.write(member, f"{checkpoint_id}/{member.name}")
    return out


def _spool_to_disk(upload: UploadFile, folder: Path) -> Path:
    """Copy the upload (already size-capped while it streamed) to a temp file in ``folder``'s
    file system, so publishing moves it instead of copying it again."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".upload-", suffix=".partial", delete=False)
    with handle:
        upload.file.seek(0)
        shutil.copyfileobj(upload.file, handle, 1 << 20)
    return Path(handle.name)


def _present_card(checkpoint_id: str, registry, downloads, settings) -> dict[str, Any]:
    for card in checkpoint_cards(registry, downloads, settings):
        if card["id"] == checkpoint_id and card["kind"] != "catalog":
            return card
    raise UnknownModelError(f"no checkpoint {checkpoint_id!r} is present; GET /api/checkpoints lists them")

