"""Pure image helpers: resizing, hashes, near-duplicate detection, the photo filter, compositing
and panorama tiles."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from .base import MAX_ASPECT, TILE_ASPECT, CorpusError


def resize_short_side(img: Image.Image, size: int) -> Image.Image:
    """Resize so the short side is exactly ``size`` px, keeping the aspect ratio."""
    w, h = img.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    if w <= h:
        new = (size, new[1])
    else:
        new = (new[0], size)
    return img.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)


def pixel_hash(rgb: np.ndarray) -> str:
    """SHA-256 of decoded pixels (shape included), the exact-duplicate key."""
    h = hashlib.sha256(f"{rgb.shape}".encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def _gray_thumb(rgb: np.ndarray, side: int) -> np.ndarray:
    img = Image.fromarray(rgb).convert("L").resize((side, side), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.float64)


def average_hash(rgb: np.ndarray) -> int:
    """64-bit average hash: 8x8 grey thumbnail, one bit per pixel brighter than the mean."""
    thumb = _gray_thumb(rgb, 8).ravel()
    bits = thumb > thumb.mean()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


class Deduplicator:
    """Keeps the first of each group of identical or near-identical images.

    Exact duplicates share a pixel hash. Near duplicates (the same picture resized, recompressed
    or slightly cropped by another package) have average hashes within ``max_hamming`` bits *and*
    32x32 grey thumbnails within ``max_thumb_diff`` mean absolute difference; the second test
    stops unrelated images with similar coarse layout (dark skies) from colliding.
    """

    def __init__(self, max_hamming: int = 6, max_thumb_diff: float = 8.0) -> None:
        self.max_hamming = max_hamming
        self.max_thumb_diff = max_thumb_diff
        self._exact: dict[str, str] = {}
        self._near: list[tuple[int, np.ndarray, str]] = []

    def check(self, key: str, rgb: np.ndarray, content_hash: str | None = None) -> str | None:
        """Return the key of an earlier duplicate of ``rgb``, or register it and return None."""
        content_hash = content_hash or pixel_hash(rgb)
        if content_hash in self._exact:
            return self._exact[content_hash]
        ahash = average_hash(rgb)
        thumb = _gray_thumb(rgb, 32)
        for other_hash, other_thumb, other_key in self._near:
            if hamming(ahash, other_hash) <= self.max_hamming:
                if float(np.abs(thumb - other_thumb).mean()) <= self.max_thumb_diff:
                    return other_key
        self._exact[content_hash] = key
        self._near.append((ahash, thumb, key))
        return None


def split_for_hash(content_hash: str, heldout_fraction: float) -> str:
    """``"heldout"`` for about ``heldout_fraction`` of hashes, ``"train"`` for the rest.

    A pure function of the hash: adding or removing other images never moves an image.
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise CorpusError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    u = int(hashlib.sha256(("split:" + content_hash).encode()).hexdigest()[:13], 16) / 16**13
    return "heldout" if u < heldout_fraction else "train"


@dataclass(frozen=True)
class NaturalnessStats:
    """Cheap statistics that separate photographs from flat, vector or smooth gradient art.

    Attributes:
        lum_std: standard deviation of luminance (0-255).
        colours: distinct colours after quantising each channel to 4 bits (at most 4096).
        smooth_fraction: share of pixels whose 4-neighbour luminance Laplacian is below 1 grey
            level: near 1 for flat fills and clean gradients, 0.05-0.4 for photographs.
        grey: whether the image is (almost) grey-scale.
    """

    lum_std: float
    colours: int
    smooth_fraction: float
    grey: bool


def naturalness_stats(rgb: np.ndarray, alpha: np.ndarray | None = None) -> NaturalnessStats:
    """Statistics over ``rgb`` [H, W, 3] uint8 (only where ``alpha`` > 127, if given).

    Computed on the downsized image (short side ~256 px), where sensor noise is averaged away
    but texture remains.
    """
    lum = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    sel = np.ones(lum.shape, dtype=bool) if alpha is None else alpha > 127
    if not sel.any():
        return NaturalnessStats(0.0, 0, 1.0, True)
    q = (rgb[sel] >> 4).astype(np.int32)
    colours = int(np.unique(q[:, 0] * 256 + q[:, 1] * 16 + q[:, 2]).size)
    chroma = float(np.abs(rgb[sel].astype(np.float32) - lum[sel][:, None]).mean())
    lap = np.abs(
        4 * lum[1:-1, 1:-1] - lum[:-2, 1:-1] - lum[2:, 1:-1] - lum[1:-1, :-2] - lum[1:-1, 2:]
    )
    # Interior pixels only: a stamp's cut-out edge is not texture.
    inner = sel[1:-1, 1:-1] & sel[:-2, 1:-1] & sel[2:, 1:-1] & sel[1:-1, :-2] & sel[1:-1, 2:]
    smooth = float((lap[inner] < 1.0).mean()) if inner.any() else 1.0
    return NaturalnessStats(float(lum[sel].std()), colours, smooth, chroma < 2.0)


def looks_natural(stats: NaturalnessStats, *, stamp: bool = False) -> str | None:
    """None if the statistics look like a colour photograph, else the reason it does not.

    Thresholds were set on ~150 hand-labelled wallpapers and sample images: they drop flat
    fills, line art, logos and clean vector gradients. Busy abstract renders (mosaics, textured
    3D art) pass; the package rules in ``PACKAGE_RULES`` exclude those by path.
    """
    if stats.grey:
        return "greyscale"
    if stats.lum_std < 10.0:
        return "flat"
    if stats.colours < (60 if stamp else 40):
        return "few-colours"
    if stats.smooth_fraction > (0.40 if stamp else 0.45):
        return "smooth"
    return None


def composite_stamp(
    background: np.ndarray,
    stamp: np.ndarray,
    top_left: tuple[int, int],
    *,
    height: int,
    flip: bool = False,
) -> np.ndarray:
    """Alpha-blend an RGBA ``stamp`` scaled to ``height`` px onto an RGB ``background``.

    Args:
        background: [H, W, 3] uint8.
        stamp: [h, w, 4] uint8 with straight (non-premultiplied) alpha.
        top_left: (x, y) of the scaled stamp's top-left corner; it may hang over the edges.
        height: scaled stamp height in pixels (width follows the aspect ratio).
        flip: mirror the stamp horizontally first.

    Returns:
        A new [H, W, 3] uint8 array.
    """
    img = Image.fromarray(stamp, "RGBA")
    if flip:
        img = ImageOps.mirror(img)
    width = max(1, round(stamp.shape[1] * height / stamp.shape[0]))
    scaled = np.asarray(img.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32)
    out = background.astype(np.float32)
    x, y = top_left
    H, W = background.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + width), min(H, y + height)
    if x0 >= x1 or y0 >= y1:
        return background.copy()
    patch = scaled[y0 - y : y1 - y, x0 - x : x1 - x]
    a = patch[..., 3:4] / 255.0
    out[y0:y1, x0:x1] = patch[..., :3] * a + out[y0:y1, x0:x1] * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def tile_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Crop boxes for an image: the whole image, or evenly spread TILE_ASPECT tiles of a panorama."""
    long_side, short_side = max(width, height), min(width, height)
    if long_side <= MAX_ASPECT * short_side:
        return [(0, 0, width, height)]
    tile = round(TILE_ASPECT * short_side)
    n = math.ceil(long_side / tile)
    starts = [round(i * (long_side - tile) / (n - 1)) for i in range(n)]
    if width >= height:
        return [(s, 0, s + tile, height) for s in starts]
    return [(0, s, width, s + tile) for s in starts]
