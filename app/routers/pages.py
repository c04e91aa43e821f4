"""HTML pages and the locally served plotly.js."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse

from mae_core.masking import GRID_RATIO, ordered_strategies

from ..checkpoint_cards import models_payload
from ..deps import RegistryDep, SettingsDep
from ..errors import ServiceUnavailableError
from ..templating import STATIC_DIR, plotly_js_path, templates

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

SAMPLES_DIR = STATIC_DIR / "samples"


def sample_images() -> list[dict[str, Any]]:
    """The bundled sample photos, from ``static/samples/samples.json`` (file, title, credit)."""
    manifest = SAMPLES_DIR / "samples.json"
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        entries = [{"file": p.name, "title": p.stem.replace("-", " "), "credit": ""}
                   for p in sorted(SAMPLES_DIR.glob("*.jpg"))]
    return [e for e in entries if (SAMPLES_DIR / e["file"]).is_file()]


@router.get("/", response_class=HTMLResponse, name="reconstruct_page")
def reconstruct_page(request: Request, registry: RegistryDep, settings: SettingsDep) -> HTMLResponse:
    models = models_payload(registry)
    page_config = {
        "defaultModel": models.default_model,
        "defaultPresent": models.default_present,
        "gridRatio": GRID_RATIO,
        "strategies": ordered_strategies(),
        "maxUploadBytes": settings.max_upload_bytes,
        "models": [m.model_dump(include={"id", "summary", "can_reconstruct", "error", "default"})
                   for m in models.models],
    }
    return templates.TemplateResponse(request, "reconstruct.html", {
        "models": models, "samples": sample_images(), "strategies": ordered_strategies(),
        "grid_ratio": GRID_RATIO, "page_config": page_config,
    })


@router.get("/samples/licenses", response_class=PlainTextResponse, name="sample_licenses")
def sample_licenses() -> PlainTextResponse:
    """static/samples/LICENSES.md as text, so browsers show it instead of downloading it."""
    path = SAMPLES_DIR / "LICENSES.md"
    if not path.is_file():
        raise HTTPException(404, "no sample photos are bundled")
    return PlainTextResponse(path.read_text(encoding="utf-8"))


@router.get("/vendor/plotly.min.js", name="plotly_js")
def plotly_js() -> FileResponse:
    path = plotly_js_path()
    if path is None:
        raise ServiceUnavailableError("plotly is not installed; pip install plotly")
    return FileResponse(path, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})
