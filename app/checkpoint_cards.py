"""The Models page's cards: every checkpoint the server knows, one entry each.

Local files (the checkpoint folder, with the embedded default), the data folder's models
(trained by jobs, downloaded, uploaded) and the catalog of downloadable ones, merged by id with
their state (present, downloading, failed, available) and what a user needs to choose one:
architecture, size on disk, licence, what it is good for, and the PSNR measured here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mae_core.checkpoint.catalog import CatalogEntry
from mae_service.downloads import DownloadManager, DownloadState

from .registry import ModelRegistry, describe_card
from .schemas import ModelsResponse
from .settings import Settings

EMBEDDED, LOCAL, TRAINED, DOWNLOADED, UPLOADED, CATALOG = (
    "embedded", "local", "trained", "downloaded", "uploaded", "catalog")


def checkpoint_cards(registry: ModelRegistry, downloads: DownloadManager,
                     settings: Settings) -> list[dict[str, Any]]:
    """Present checkpoints first (default, then by id), then the catalog entries not present."""
    infos = registry.checkpoints()
    cards = []
    for info in infos.values():
        entry = downloads.catalog.get(info.id)
        kind = _kind(info.id, info.path, info.card, registry, settings)
        cards.append({
            "id": info.id, "kind": kind, "state": "broken" if info.error else "present",
            "error": info.error, "can_reconstruct": info.can_reconstruct and not info.error,
            "default": info.id == registry.default_id,
            "deletable": kind in (TRAINED, DOWNLOADED, UPLOADED),
            "size_bytes": _size(info.path), "summary": describe_card(info.card),
            "licence": info.card.get("licence") or (entry.licence if entry else None),
            "description": info.card.get("description") or (entry.description if entry else None),
            "good_for": info.card.get("good_for") or (entry.good_for if entry else None),
            "samples_quality": info.card.get("samples_quality"),
            "download": None, "exportable": not info.error,
        })
    cards.sort(key=lambda c: (not c["default"], c["kind"] == TRAINED, c["id"]))
    for entry in downloads.catalog.values():
        if entry.name not in infos:
            cards.append(_catalog_card(entry, downloads.status(entry.name)))
    return cards


def _kind(model_id: str, path: Path, card: dict[str, Any], registry: ModelRegistry,
          settings: Settings) -> str:
    in_folder = path.parent == registry.folder
    if in_folder and model_id == settings.default_model:
        return EMBEDDED
    source = card.get("source") or {}  # what the server itself placed, wherever it sits
    if source.get("catalog_id"):
        return DOWNLOADED
    if source.get("uploaded"):
        return UPLOADED
    return LOCAL if in_folder else TRAINED


def _catalog_card(entry: CatalogEntry, download: DownloadState | None) -> dict[str, Any]:
    return {
        "id": entry.name, "kind": CATALOG, "state": download.state if download else "available",
        "error": download.error if download else None, "can_reconstruct": False, "default": False,
        "deletable": False, "size_bytes": entry.size_bytes,
        "summary": {"architecture": entry.description}, "licence": entry.licence,
        "description": entry.description, "good_for": entry.good_for,
        "has_decoder": entry.has_decoder, "source": entry.source, "samples_quality": None,
        "download": download.to_dict() if download else None, "exportable": False,
    }


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def models_payload(registry: ModelRegistry) -> ModelsResponse:
    """GET /api/models' reply (also embedded in the pages): the loadable checkpoints."""
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
