"""Compose the paper's Figure 4 layout: original · masked · reconstruction · reconstruction+visible."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .png import encode_rgb_png
from .reconstruct import Reconstruction

PANEL_TITLES = ("original", "masked", "reconstruction", "reconstruction + visible")


# narrowest panel drawn: the titles (~6 px a character) fit above it, and a small training
# snapshot (32-64 px images) shown at page size has labels as large as its pixels, not smaller
MIN_PANEL = 160


def compose_figure(
    recs: Reconstruction | Sequence[Reconstruction], gap: int = 8, title_height: int = 18,
    min_panel: int = 1,
) -> Image.Image:
    """One row of four panels per reconstruction, titled, on a white background.

    Panels narrower than ``min_panel`` (training snapshots pass ``MIN_PANEL``; the reconstruct
    API keeps the image's own size) are enlarged by a whole factor (nearest neighbour, so
    patches stay sharp) so the titles fit above them and stay readable.
    """
    rows = [recs] if isinstance(recs, Reconstruction) else list(recs)
    h, w = rows[0].original.shape[:2]
    scale = max(1, -(-min_panel // w))
    h, w = h * scale, w * scale
    width = 4 * w + 5 * gap
    row_height = h + title_height + gap
    canvas = Image.new("RGB", (width, len(rows) * row_height + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for r, rec in enumerate(rows):
        top = gap + r * row_height
        titles = list(PANEL_TITLES)
        titles[1] = f"masked {rec.mask_ratio:.0%} ({rec.strategy})"
        for c, (title, panel) in enumerate(zip(titles, rec.panels.values())):
            left = gap + c * (w + gap)
            draw.text((left, top), title, fill=(0, 0, 0))
            image = Image.fromarray(np.ascontiguousarray(panel))
            if scale > 1:
                image = image.resize((w, h), Image.Resampling.NEAREST)
            canvas.paste(image, (left, top + title_height))
    return canvas


PANEL_FORMATS = ("png", "jpeg", "webp")


def to_png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """Lossless PNG bytes, encoded for speed (request paths)."""
    return encode_image(image, "png")


def encode_image(image: Image.Image | np.ndarray, fmt: str = "png", **options) -> bytes:
    """Encode as PNG (lossless, ~1.5 ms for 224 px), JPEG (q95, ~0.3 ms) or WebP (q90, ~1.5 ms).

    RGB PNGs without options go through the fast encoder in ``mae_core.png``.
    """
    if fmt == "png" and not options:
        pixels = np.asarray(image)
        if pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3:
            return encode_rgb_png(pixels)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image))
    defaults = {"png": {"compress_level": 1}, "jpeg": {"quality": 95}, "webp": {"quality": 90, "method": 0}}
    if fmt not in defaults:
        raise ValueError(f"unknown image format {fmt!r}; choose one of {', '.join(PANEL_FORMATS)}")
    buf = io.BytesIO()
    image.save(buf, format=fmt.upper(), **{**defaults[fmt], **options})
    return buf.getvalue()
