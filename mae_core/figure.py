"""Compose the paper's Figure 4 layout: original · masked · reconstruction · reconstruction+visible."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .reconstruct import Reconstruction

PANEL_TITLES = ("original", "masked", "reconstruction", "reconstruction + visible")


def compose_figure(
    recs: Reconstruction | Sequence[Reconstruction], gap: int = 8, title_height: int = 18
) -> Image.Image:
    """One row of four panels per reconstruction, titled, on a white background."""
    rows = [recs] if isinstance(recs, Reconstruction) else list(recs)
    h, w = rows[0].original.shape[:2]
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
            canvas.paste(Image.fromarray(np.ascontiguousarray(panel)), (left, top + title_height))
    return canvas


def to_png_bytes(image: Image.Image | np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes; a low compression level keeps encoding cheap on request paths."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image))
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
