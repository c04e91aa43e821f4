"""Building the corpus folder: photos (tiled when panoramic) and composites written as JPEG into
a staging folder, the manifest last, then the staging folder swapped in as a whole."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from mae_core.train.manifest import MANIFEST_FILE

from .base import DEFAULT_COMPOSITES, JPEG_QUALITY, MIN_SOURCE_SIDE, SPLITS, CorpusError
from .composites import Composite, make_composites
from .extract import ExtractedPackage, PackageFailure, fetch_packages
from .images import pixel_hash, split_for_hash, tile_boxes
from .licences import match_licence
from .manifest import CorpusEntry, CorpusManifest, package_summaries, write_manifest
from .scan import _Photo, scan_extracted
from .select import select_photos, select_stamps
from .sources import DEFAULT_PACKAGES, PACKAGE_RULES, PackageRule

logger = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def build_corpus_from_extracted(
    packages: Sequence[ExtractedPackage],
    out_dir: Path,
    *,
    size: int = 256,
    heldout_fraction: float = 0.1,
    composites: int = DEFAULT_COMPOSITES,
    seed: int = 0,
    failures: Sequence[PackageFailure] = (),
    rules: Mapping[str, PackageRule] | None = None,
    workers: int | None = None,
) -> CorpusManifest:
    """Build the corpus from packages that are already extracted (no apt, no network).

    Args:
        packages: extracted packages (see ``fetch_packages`` or ``ExtractedPackage.from_root``).
        out_dir: output folder; replaced as a whole when the build succeeds. An existing
            non-empty folder without a ``manifest.json`` is refused.
        size: short side of every output image in pixels.
        heldout_fraction: share of source images (by content hash) kept out of training.
        composites: number of stamp-on-background composites to add.
        seed: seed for composites.
        failures: packages that could not be fetched, recorded in the manifest.
        rules: per-package path rules (default ``PACKAGE_RULES``).
        workers: decoding processes (default: up to 2, the CPU count).

    Returns:
        The manifest that was written to ``out_dir/manifest.json``.

    Raises:
        CorpusError: bad parameters, an unusable output folder, or no usable photo at all.
    """
    _check_params(size, composites, heldout_fraction)
    out_dir = Path(out_dir)
    workers = workers if workers is not None else max(1, min(2, os.cpu_count() or 1))
    rules = PACKAGE_RULES if rules is None else rules
    scan = scan_extracted(packages, size, rules=rules, workers=workers)
    photos = select_photos(scan.photos, heldout_fraction, rules, scan.rejected)
    stamps = select_stamps(scan.stamps, heldout_fraction, scan.rejected)
    if not photos:
        raise CorpusError(
            "no usable photographs found in the given packages "
            f"({', '.join(p.name for p in packages) or 'none'})"
        )
    logger.info("%d distinct photos, %d stamps", len(photos), len(stamps))

    backgrounds = [p for p in photos if rules.get(p.package.name, PackageRule()).backgrounds]
    cutouts = [s for s in stamps if rules.get(s.package.name, PackageRule()).stamps]
    params = dict(size=size, heldout_fraction=heldout_fraction, composites=composites, seed=seed,
                  jpeg_quality=JPEG_QUALITY, min_source_side=MIN_SOURCE_SIDE)  # fmt: skip
    with _staged(out_dir) as staging:
        entries = _write_photos(staging, photos)
        entries += _write_composites(
            staging, make_composites(backgrounds, cutouts, composites, size, seed), size
        )
        entries.sort(key=lambda e: e.path)
        manifest = CorpusManifest(
            params=params,
            packages=package_summaries(
                packages, entries, Counter(s.package.name for s in cutouts), scan.rejected
            ),
            failures=[asdict(f) for f in sorted(failures, key=lambda f: f.package)],
            entries=entries,
        )
        write_manifest(staging / MANIFEST_FILE, manifest)
    logger.info("corpus written to %s: %s", out_dir, manifest.counts())
    return manifest


def _check_params(size: int, composites: int, heldout_fraction: float) -> None:
    if size < 32:
        raise CorpusError(f"size must be at least 32 px, got {size}")
    if composites < 0:
        raise CorpusError(f"composites must be >= 0, got {composites}")
    split_for_hash("", heldout_fraction)  # validates the fraction


def _safe_stem(text: str, limit: int = 48) -> str:
    return _SAFE.sub("-", text).strip("-.")[:limit] or "img"


def _write_jpeg(path: Path, rgb: np.ndarray) -> str:
    """Write ``rgb`` as a JPEG file; returns the file's SHA-256."""
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    data = buf.getvalue()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _write_photos(staging: Path, photos: Sequence[_Photo]) -> list[CorpusEntry]:
    """One JPEG per photo, or per tile of a panorama."""
    entries: list[CorpusEntry] = []
    for ph in tqdm(photos, desc="write", unit="img"):
        H, W = ph.rgb.shape[:2]
        boxes = tile_boxes(W, H)
        stem = f"{_safe_stem(ph.package.name, 32)}__{_safe_stem(Path(ph.source_path).stem)}"
        lic, basis = match_licence(ph.package.copyright, ph.source_path)
        for i, box in enumerate(boxes):
            tile = np.ascontiguousarray(ph.rgb[box[1] : box[3], box[0] : box[2]])
            suffix = f"_t{i}" if len(boxes) > 1 else ""
            rel = f"{ph.split}/{stem}_{ph.content_hash[:10]}{suffix}.jpg"
            entries.append(
                CorpusEntry(
                    path=rel,
                    split=ph.split,
                    kind="photo",
                    package=ph.package.name,
                    version=ph.package.version,
                    source_path=ph.source_path,
                    licence=lic,
                    licence_basis=basis,
                    sha256=_write_jpeg(staging / rel, tile),
                    content_hash=ph.content_hash,
                    width=int(tile.shape[1]),
                    height=int(tile.shape[0]),
                    crop=list(box) if len(boxes) > 1 else None,
                )
            )
    return entries


def _write_composites(
    staging: Path, composites: Sequence[Composite], size: int
) -> list[CorpusEntry]:
    """One JPEG per composite; its licence joins the background's and every stamp's."""
    entries: list[CorpusEntry] = []
    for i, (rgb, bg, crop, placed) in enumerate(composites):
        chash = pixel_hash(rgb)
        bg_lic, bg_basis = match_licence(bg.package.copyright, bg.source_path)
        rel = f"{bg.split}/composite_{i:05d}_{chash[:10]}.jpg"
        entries.append(
            CorpusEntry(
                path=rel,
                split=bg.split,
                kind="composite",
                package=bg.package.name,
                version=bg.package.version,
                source_path=bg.source_path,
                licence=" + ".join(sorted({bg_lic} | {p["licence"] for p in placed})),
                licence_basis=bg_basis,
                sha256=_write_jpeg(staging / rel, rgb),
                content_hash=chash,
                width=size,
                height=size,
                crop=crop,
                stamps=placed,
            )
        )
    return entries


class _staged:
    """``with _staged(out) as staging``: a fresh folder beside ``out`` holding ``subdirs``
    (``train/`` and ``heldout/``); on success it replaces ``out`` as a whole, on failure it is
    removed.

    A non-empty ``out`` without a manifest is refused, so a wrong path never loses files.
    """

    def __init__(self, out_dir: Path, subdirs: Sequence[str] = SPLITS) -> None:
        self.out_dir = out_dir
        self.subdirs = tuple(subdirs)
        self.staging: Path | None = None

    def __enter__(self) -> Path:
        out_dir = self.out_dir
        if out_dir.exists():
            if not out_dir.is_dir():
                raise CorpusError(f"{out_dir} exists and is not a folder")
            if any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).is_file():
                raise CorpusError(
                    f"{out_dir} is not empty and holds no manifest.json: refusing to overwrite "
                    "it; choose a new or empty folder"
                )
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        for sub in self.subdirs:
            (self.staging / sub).mkdir()
        return self.staging

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.staging is not None
        if exc_type is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        old = None
        if self.out_dir.exists():
            old = self.out_dir.with_name(f".{self.out_dir.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(self.out_dir, old)
        os.replace(self.staging, self.out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def build_corpus(
    out_dir: Path,
    *,
    packages: Sequence[str] = DEFAULT_PACKAGES,
    size: int = 256,
    heldout_fraction: float = 0.1,
    composites: int = DEFAULT_COMPOSITES,
    seed: int = 0,
    cache_dir: Path | None = None,
    rules: Mapping[str, PackageRule] | None = None,
    workers: int | None = None,
) -> CorpusManifest:
    """Download the packages, extract them to a temp folder, and build the corpus in ``out_dir``.

    Args:
        out_dir: output folder (``train/``, ``heldout/``, ``manifest.json``).
        packages: Debian package names to take images from.
        size: short side of every output image in pixels.
        heldout_fraction: share of images (by content hash) kept out of training.
        composites: number of stamp-on-background composites to add.
        seed: seed for composites.
        cache_dir: where ``.deb`` files are kept between builds (default: a temp folder that is
            deleted afterwards). With a warm cache the build needs no network.
        rules: per-package path rules (default ``PACKAGE_RULES``).
        workers: decoding processes.

    Returns:
        The manifest written to ``out_dir/manifest.json``.

    Raises:
        CorpusError: apt tools missing, every package failed, or nothing usable was found.
    """
    with tempfile.TemporaryDirectory(prefix="mae-corpus-") as tmp:
        tmp_path = Path(tmp)
        cache = Path(cache_dir) if cache_dir is not None else tmp_path / "debs"
        extracted, failures = fetch_packages(packages, cache, tmp_path / "extracted")
        if not extracted:
            raise CorpusError(
                "none of the packages could be downloaded: "
                + "; ".join(f"{f.package}: {f.reason}" for f in failures)
            )
        return build_corpus_from_extracted(
            extracted,
            Path(out_dir),
            size=size,
            heldout_fraction=heldout_fraction,
            composites=composites,
            seed=seed,
            failures=failures,
            rules=rules,
            workers=workers,
        )
