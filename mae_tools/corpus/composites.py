"""Seeded composites: 1-3 cut-out stamps pasted on a crop of a photo of the same split."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from .base import SPLITS
from .images import composite_stamp
from .licences import match_licence
from .scan import _Photo, _Stamp

logger = logging.getLogger(__name__)

Composite = tuple[np.ndarray, _Photo, list[int], list[dict[str, Any]]]


def make_composites(
    photos: Sequence[_Photo],
    stamps: Sequence[_Stamp],
    n: int,
    size: int,
    seed: int,
) -> list[Composite]:
    """``n`` seeded composites: (pixels, background photo, crop box, stamp placements)."""
    if n <= 0:
        return []
    if not photos or not stamps:
        logger.warning("no %s available: skipping composites", "photos" if not photos else "stamps")
        return []
    by_split = {s: [st for st in stamps if st.split == s] for s in SPLITS}
    rng = np.random.default_rng(seed)
    out = []
    for _ in tqdm(range(n), desc="composites", unit="img"):
        bg = photos[int(rng.integers(len(photos)))]
        # A composite only uses stamps of its background's split: nothing held out leaks.
        pool = by_split[bg.split] or by_split["train"]
        canvas, box = _background_crop(bg, size, rng)
        placed = []
        for _k in range(int(rng.integers(1, 4))):
            canvas, placement = _paste_one(canvas, pool[int(rng.integers(len(pool)))], size, rng)
            placed.append(placement)
        out.append((canvas, bg, box, placed))
    return out


def _background_crop(
    bg: _Photo, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[int]]:
    """A seeded square crop of ``bg`` (55-100 % of its short side) resized to ``size``."""
    H, W = bg.rgb.shape[:2]
    side = int(round(min(H, W) * rng.uniform(0.55, 1.0)))
    left = int(rng.integers(0, W - side + 1))
    top = int(rng.integers(0, H - side + 1))
    crop = bg.rgb[top : top + side, left : left + side]
    canvas = np.asarray(
        Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8
    )
    return canvas, [left, top, left + side, top + side]


def _paste_one(
    canvas: np.ndarray, st: _Stamp, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """Paste one stamp at a seeded scale, place and mirroring; returns its manifest record."""
    sh, sw = st.rgba.shape[:2]
    longest = rng.uniform(0.3, 0.75) * size
    height = max(8, int(round(longest * sh / max(sh, sw))))
    width = max(1, round(sw * height / sh))
    x = int(rng.integers(-width // 4, size - 3 * width // 4 + 1))
    y = int(rng.integers(-height // 8, size - 3 * height // 4 + 1))
    flip = bool(rng.integers(2))
    lic, basis = match_licence(st.package.copyright, st.source_path)
    canvas = composite_stamp(canvas, st.rgba, (x, y), height=height, flip=flip)
    return canvas, {
        "package": st.package.name,
        "version": st.package.version,
        "source_path": st.source_path,
        "licence": lic,
        "licence_basis": basis,
        "box": [x, y, x + width, y + height],
        "flip": flip,
    }
