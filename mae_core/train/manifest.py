"""The corpus manifest a photo folder may carry (written by ``mae data build-corpus``), and what
a checkpoint card records about the data a model was trained on."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"


def find_manifest(data_path: str | Path) -> Path | None:
    """The corpus ``manifest.json`` describing ``data_path`` (the corpus root or a split in it)."""
    path = Path(data_path)
    for candidate in (path / MANIFEST_FILE, path.parent / MANIFEST_FILE):
        if candidate.is_file():
            return candidate
    return None


def manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint card records about its training corpus: counts, build parameters, and
    for each source package its version, the licences of the files used and the file counts."""
    return {
        "counts": manifest.get("counts", {}),
        "build_params": manifest.get("params", {}),
        "sources": [
            {"package": p.get("package"), "version": p.get("version"),
             "licences_used": p.get("licences_used", []), "photos": p.get("photos", {}),
             "stamps_pasted": p.get("stamps_pasted", 0)}
            for p in manifest.get("packages", [])
        ],
        "licence_note": "per-file source, licence and copyright holders are in the corpus "
                        "manifest.json written by `mae data build-corpus`",
    }


def describe_data(path: str | Path, num_files: int) -> dict[str, Any]:
    """Data section of an exported card; includes the corpus manifest summary if there is one."""
    description: dict[str, Any] = {"description": f"image folder {Path(path).name}",
                                   "path": str(path), "num_images": num_files}
    manifest = find_manifest(path)
    if manifest is not None:
        try:
            corpus = manifest_summary(json.loads(manifest.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("cannot read corpus manifest %s: %s", manifest, exc)
            return description
        description["corpus"] = corpus
        licences = sorted({lic for src in corpus["sources"] for lic in src["licences_used"]})
        description["description"] = (
            f"photo corpus from {len(corpus['sources'])} Debian packages "
            f"(licences: {', '.join(licences[:6])}{', ...' if len(licences) > 6 else ''})")
    return description
