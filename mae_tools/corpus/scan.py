"""Scanning an extracted package: which files to decode, and each one classified as a photo, a
cut-out stamp or a rejection with its reason."""

from __future__ import annotations

import math
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from mae_core.imaging import to_rgb

from .base import MIN_SOURCE_SIDE, MIN_STAMP_SIDE, RASTER_SUFFIXES
from .extract import ExtractedPackage, _sha256_file
from .images import average_hash, looks_natural, naturalness_stats, pixel_hash, resize_short_side
from .sources import PACKAGE_RULES, PackageRule


@dataclass
class _Photo:
    """An accepted photo before writing: resized RGB pixels plus provenance."""

    package: ExtractedPackage
    source_path: str  # installed path, "/usr/share/..."
    rgb: np.ndarray  # [H, W, 3] uint8, short side == size
    content_hash: str
    ahash: int
    split: str = "train"


@dataclass
class _Stamp:
    package: ExtractedPackage
    source_path: str
    rgba: np.ndarray  # [H, W, 4] uint8, cropped to the opaque bounding box
    content_hash: str
    split: str = "train"


@dataclass
class _ScanResult:
    photos: list[_Photo] = field(default_factory=list)
    stamps: list[_Stamp] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)



def iter_raster_files(root: Path) -> list[Path]:
    """Raster image files below ``root``, sorted, symlinks skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.suffix.lower() in RASTER_SUFFIXES and not p.is_symlink():
                found.append(p)
    return found


def _decode(path: Path, size: int) -> tuple[str, Any]:
    """Decode one file into ("photo", rgb) / ("stamp", rgba) / ("reject", reason)."""
    try:
        with Image.open(path) as im:
            source_short = min(im.size)
            if source_short < MIN_STAMP_SIDE:
                return "reject", "too-small"
            if im.format == "JPEG" and min(im.size) > 4 * size:
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale, keeping the short side >= 2*size.
                scale = 2 * size / min(im.size)
                im.draft("RGB", (math.ceil(im.size[0] * scale), math.ceil(im.size[1] * scale)))
            im = ImageOps.exif_transpose(im)
            has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                im.mode == "P" and "transparency" in im.info
            )
            rgba = np.asarray(im.convert("RGBA")) if has_alpha else None
            rgb_img = to_rgb(im) if rgba is None else None  # also scales 16-bit images
    except Exception as exc:  # noqa: BLE001 - any undecodable file is just skipped
        return "reject", f"undecodable:{type(exc).__name__}"
    if rgba is not None and float((rgba[..., 3] < 250).mean()) > 0.01:
        return _prepare_stamp(rgba)
    if rgba is not None:
        rgb_img = Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB")
    assert rgb_img is not None
    if source_short < MIN_SOURCE_SIDE:
        return "reject", "too-small"
    small = np.asarray(resize_short_side(rgb_img, size))
    reason = looks_natural(naturalness_stats(small))
    if reason:
        return "reject", reason
    return "photo", small


def _prepare_stamp(rgba: np.ndarray) -> tuple[str, Any]:
    opaque = rgba[..., 3] > 127
    if opaque.mean() < 0.05:
        return "reject", "mostly-transparent"
    ys, xs = np.nonzero(opaque)
    crop = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    if min(crop.shape[:2]) < MIN_STAMP_SIDE:
        return "reject", "stamp-too-small"
    img = Image.fromarray(np.ascontiguousarray(crop), "RGBA")
    if max(img.size) > 512:  # plenty for compositing at 256 px
        img.thumbnail((512, 512), Image.Resampling.LANCZOS)
    crop = np.asarray(img)
    reason = looks_natural(naturalness_stats(crop[..., :3], crop[..., 3]), stamp=True)
    if reason:
        return "reject", "stamp-" + reason
    return "stamp", crop


def _decode_job(args: tuple[str, int]) -> tuple[str, Any]:
    return _decode(Path(args[0]), args[1])


def scan_extracted(
    packages: Sequence[ExtractedPackage],
    size: int,
    *,
    rules: Mapping[str, PackageRule] | None = None,
    workers: int = 1,
) -> _ScanResult:
    """Decode and classify the raster images of every package (deterministic order).

    Args:
        packages: extracted packages.
        size: short side the photos are resized to.
        rules: per-package path rules (default ``PACKAGE_RULES``); packages without one use
            every raster file outside ``GLOBAL_EXCLUDE``.
        workers: decoding processes.
    """
    rules = PACKAGE_RULES if rules is None else rules
    jobs: list[tuple[ExtractedPackage, Path]] = []
    seen_files: set[str] = set()
    result = _ScanResult()
    for pkg in sorted(packages, key=lambda p: p.name):
        rule = rules.get(pkg.name, PackageRule())
        for path in iter_raster_files(pkg.root):
            if not rule.allows("/" + path.relative_to(pkg.root).as_posix()):
                result.rejected[(pkg.name, "excluded-by-rule")] += 1
                continue
            digest = _sha256_file(path)
            if digest in seen_files:  # same file shipped twice (plasma's resolution copies)
                result.rejected[(pkg.name, "duplicate-file")] += 1
                continue
            seen_files.add(digest)
            jobs.append((pkg, path))
    args = [(str(p), size) for _, p in jobs]
    if workers > 1 and len(args) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            outcomes = pool.map(_decode_job, args, chunksize=4)
            decoded = list(tqdm(outcomes, total=len(args), desc="decode", unit="img"))
    else:
        decoded = [_decode_job(a) for a in tqdm(args, desc="decode", unit="img")]
    for (pkg, path), (kind, value) in zip(jobs, decoded):
        source = "/" + path.relative_to(pkg.root).as_posix()
        if kind == "photo":
            result.photos.append(_Photo(pkg, source, value, pixel_hash(value), average_hash(value)))
        elif kind == "stamp":
            result.stamps.append(_Stamp(pkg, source, value, pixel_hash(value)))
        else:
            result.rejected[(pkg.name, value)] += 1
    return result
