"""A small labelled demo dataset (``DIR/<class>/<name>.png``) from the tuxpaint stamp package.

The stamps of ``tuxpaint-stamps-default`` (GPL-2, one of the corpus builder's packages) are object
cut-outs filed in category folders (``animals/birds``, ``food/fruit``, ...). ``DEMO_CLASSES`` maps
a few of those folders to classes; each raster stamp is cropped to its opaque pixels, centred on a
square, flattened onto a light, faintly noisy background (no transparency, no class-specific
backdrop) and resized to ``size`` px. ``DIR/manifest.json`` records the source path and licence
of every file, ``DIR/LICENSES.md`` says the same for people. The layout is what ``/features``
and ``"kind": "knn"`` jobs take as a labelled dataset.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from mae_core.io_utils import write_json_atomic

from .base import MANIFEST_VERSION, CorpusError
from .build import _safe_stem, _staged
from .extract import ExtractedPackage, extract_deb, fetch_packages
from .images import pixel_hash
from .licences import match_licence
from .scan import iter_raster_files

logger = logging.getLogger(__name__)

DEMO_PACKAGE = "tuxpaint-stamps-default"
STAMPS_ROOT = "usr/share/tuxpaint/stamps"
LABELLED_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})  # the stamps' SVG copies are skipped
MIN_OBJECT_SIDE = 32  # an opaque bounding box smaller than this is an icon, not an object
FILL = 0.88  # the object's long side covers this share of the square
BACKGROUND = (236, 234, 228)  # light warm grey, with +-3 grey levels of seeded noise


@dataclass(frozen=True)
class LabelledClass:
    """One class: its folder name and the stamp folders (under ``STAMPS_ROOT``, recursive)."""

    name: str
    folders: tuple[str, ...]


# Object categories with >= 10 raster stamps each in tuxpaint-stamps-default 2022.06.04.
DEMO_CLASSES: tuple[LabelledClass, ...] = (
    LabelledClass("birds", ("animals/birds",)),
    LabelledClass("fish", ("animals/fish",)),
    LabelledClass("insects", ("animals/insects",)),
    LabelledClass("mammals", ("animals/mammals",)),
    LabelledClass("fruit", ("food/fruit",)),
    LabelledClass("vegetables", ("food/vegetables",)),
    LabelledClass("flowers", ("plants/flowers",)),
    LabelledClass("vehicles", ("vehicles",)),
)


def flatten_stamp(rgba: np.ndarray, size: int, seed: int) -> np.ndarray | None:
    """An RGBA cut-out centred on a ``size`` px square over the light background, as RGB.

    Returns None when the stamp has fewer than ``MIN_OBJECT_SIDE`` opaque pixels across.
    """
    opaque = rgba[..., 3] > 16
    if not opaque.any():
        return None
    ys, xs = np.nonzero(opaque)
    crop = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape[:2]
    if max(h, w) < MIN_OBJECT_SIDE:
        return None
    scale = FILL * size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # Resize in premultiplied alpha so transparent pixels' colours do not bleed into edges.
    img = Image.fromarray(np.ascontiguousarray(crop), "RGBA").convert("RGBa")
    obj = np.asarray(img.resize((nw, nh), Image.Resampling.LANCZOS).convert("RGBA"), np.float32)
    rng = np.random.default_rng(seed)
    canvas = np.asarray(BACKGROUND, np.float32) + rng.normal(0, 1.5, (size, size, 1))
    x, y = (size - nw) // 2, (size - nh) // 2
    a = obj[..., 3:4] / 255.0
    region = canvas[y : y + nh, x : x + nw]
    canvas[y : y + nh, x : x + nw] = obj[..., :3] * a + region * (1.0 - a)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def _load_rgba(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGBA"))
    except Exception as exc:  # noqa: BLE001 - an undecodable file is just skipped
        logger.warning("skipping undecodable %s: %s", path, exc)
        return None


def _class_files(root: Path, cls: LabelledClass) -> list[Path]:
    files: list[Path] = []
    for folder in cls.folders:
        base = root / STAMPS_ROOT / folder
        if not base.is_dir():
            logger.warning("class %s: %s is not in the package", cls.name, base)
            continue
        files += [p for p in iter_raster_files(base) if p.suffix.lower() in LABELLED_SUFFIXES]
    return sorted(set(files))


def build_labelled_from_extracted(
    package: ExtractedPackage,
    out_dir: Path,
    *,
    classes: Sequence[LabelledClass] = DEMO_CLASSES,
    size: int = 224,
    min_per_class: int = 10,
) -> dict[str, Any]:
    """Write ``out_dir/<class>/*.png``, ``manifest.json`` and ``LICENSES.md`` from one package.

    A class with fewer than ``min_per_class`` usable stamps is left out (and listed in the
    manifest's ``dropped_classes``). Same package and options give the same files and manifest.

    Returns:
        The manifest written to ``out_dir/manifest.json``.

    Raises:
        CorpusError: bad options, or fewer than two classes left.
    """
    if not 32 <= size <= 1024:
        raise CorpusError(f"size must be between 32 and 1024 px, got {size}")
    if min_per_class < 1:
        raise CorpusError(f"min_per_class must be at least 1, got {min_per_class}")
    names = [c.name for c in classes]
    if len(set(names)) != len(names) or any(_safe_stem(n) != n for n in names):
        raise CorpusError(f"class names must be unique plain folder names, got {names}")
    rejected: Counter = Counter()
    seen: dict[str, str] = {}
    kept: dict[str, list[tuple[str, np.ndarray]]] = {}
    dropped: dict[str, int] = {}
    for cls in classes:
        images = []
        for path in _class_files(package.root, cls):
            rel = path.relative_to(package.root).as_posix()
            rgba = _load_rgba(path)
            seed = int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16)
            rgb = None if rgba is None else flatten_stamp(rgba, size, seed)
            if rgb is None:
                rejected["undecodable" if rgba is None else "too-small"] += 1
                continue
            key = pixel_hash(rgba)
            if key in seen:  # the same picture filed under two categories
                rejected["duplicate"] += 1
                continue
            seen[key] = rel
            images.append((rel, rgb))
        if len(images) < min_per_class:
            logger.warning("class %s has %d usable stamps (< %d): left out",
                           cls.name, len(images), min_per_class)
            dropped[cls.name] = len(images)
            continue
        kept[cls.name] = images
    if len(kept) < 2:
        raise CorpusError(
            f"only {len(kept)} class(es) with >= {min_per_class} stamps in {package.root}: "
            f"is it an extracted {DEMO_PACKAGE} package? (usable per class: {dropped})"
        )
    entries = []
    with _staged(Path(out_dir), subdirs=sorted(kept)) as staging:
        for name, images in sorted(kept.items()):
            used: set[str] = set()
            for rel, rgb in images:
                stem = _safe_stem(Path(rel).stem.lower())
                while stem in used:
                    stem += "-2"
                used.add(stem)
                buf = io.BytesIO()
                Image.fromarray(rgb, "RGB").save(buf, format="PNG", optimize=True)
                (staging / name / f"{stem}.png").write_bytes(buf.getvalue())
                licence, basis = match_licence(package.copyright, rel)
                entries.append({
                    "path": f"{name}/{stem}.png", "class": name, "package": package.name,
                    "version": package.version, "source_path": "/" + rel, "licence": licence,
                    "licence_basis": basis, "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                    "width": size, "height": size,
                })
        manifest = _manifest(package, classes, kept, dropped, rejected, entries, size,
                             min_per_class)
        write_json_atomic(staging / "manifest.json", manifest)
        (staging / "LICENSES.md").write_text(_licences_md(package, entries), encoding="utf-8")
    return manifest


def _manifest(package: ExtractedPackage, classes: Sequence[LabelledClass],
              kept: dict[str, list], dropped: dict[str, int], rejected: Counter,
              entries: list[dict[str, Any]], size: int, min_per_class: int) -> dict[str, Any]:
    # "counts", "params" and "packages" follow the corpus manifest, so a checkpoint card's
    # data section (mae_core.train.manifest.manifest_summary) reads this one too.
    return {
        "manifest_version": MANIFEST_VERSION,
        "kind": "labelled",
        "params": {"size": size, "min_per_class": min_per_class, "background": list(BACKGROUND),
                   "fill": FILL,
                   "classes": {c.name: [f"{STAMPS_ROOT}/{f}" for f in c.folders] for c in classes}},
        "classes": {name: len(images) for name, images in sorted(kept.items())},
        "dropped_classes": dropped,
        "counts": {"total": len(entries)},
        "packages": [{
            "package": package.name, "version": package.version,
            "deb_sha256": package.deb_sha256, "licences": list(package.copyright.licences),
            "licences_used": sorted({e["licence"] for e in entries}),
            "copyright_machine_readable": package.copyright.machine_readable,
            "copyright_summary": package.copyright.summary,
            "photos": {"total": len(entries)}, "rejected": dict(sorted(rejected.items())),
        }],
        "entries": entries,
    }


def _licences_md(package: ExtractedPackage, entries: list[dict[str, Any]]) -> str:
    lines = [
        "# Licences of the labelled demo dataset",
        "",
        f"Every image is a stamp from the Debian package `{package.name}` {package.version}, "
        "cropped, centred on a light background and resized by `mae data build-labelled`. "
        f"Licences used: {', '.join(sorted({e['licence'] for e in entries}))}. The package's "
        "copyright file begins:",
        "",
        "```",
        package.copyright.summary,
        "```",
        "",
        "| file | source path | licence |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {e['path']} | {e['source_path']} | {e['licence']} |" for e in entries]
    return "\n".join(lines) + "\n"


def package_version(root: Path, name: str) -> str:
    """Version from ``usr/share/doc/NAME/changelog.Debian.gz`` of an extracted package."""
    changelog = Path(root) / "usr/share/doc" / name / "changelog.Debian.gz"
    try:
        with gzip.open(changelog, "rt", encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError:
        return "unknown"
    m = re.match(r"\S+ \(([^)]+)\)", first)
    return m.group(1) if m else "unknown"


def build_labelled(
    out_dir: Path,
    *,
    source: Path | None = None,
    cache_dir: Path | None = None,
    size: int = 224,
    min_per_class: int = 10,
) -> dict[str, Any]:
    """Build the demo dataset from ``source`` (a ``.deb`` file or a ``dpkg -x`` folder of
    ``tuxpaint-stamps-default``), or else from the package fetched with ``apt-get download``.

    Raises:
        CorpusError: the source is missing or unusable, or the package cannot be fetched.
    """
    with tempfile.TemporaryDirectory(prefix="mae-labelled-") as tmp:
        if source is None:
            cache = Path(cache_dir) if cache_dir is not None else Path(tmp) / "debs"
            extracted, failures = fetch_packages([DEMO_PACKAGE], cache, Path(tmp) / "x")
            if not extracted:
                raise CorpusError(f"cannot fetch {DEMO_PACKAGE}: {failures[0].reason}")
            package = extracted[0]
        elif Path(source).is_file() and Path(source).suffix == ".deb":
            package = extract_deb(Path(source), Path(tmp) / "x")
        elif Path(source).is_dir():
            root = Path(source)
            package = ExtractedPackage.from_root(DEMO_PACKAGE,
                                                 package_version(root, DEMO_PACKAGE), root)
        else:
            raise CorpusError(f"--from {source}: give a .deb file or an extracted package folder")
        return build_labelled_from_extracted(package, Path(out_dir), size=size,
                                             min_per_class=min_per_class)
