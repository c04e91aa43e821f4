"""Reproducible natural-image corpus assembled from freely licensed Debian packages.

The corpus is what the embedded default checkpoint is trained on: a few hundred to a few thousand
photographs, small enough (short side 256 px, JPEG quality 90) to ship to a GPU machine in one go.

Pipeline (each stage is a separate function so the pure parts can be tested offline):

1. ``fetch_packages``: ``apt-get download`` each package into a cache folder and ``dpkg -x`` it
   into a scratch folder (Qt ``.rcc`` resource bundles and ``.pk3`` zip archives of game
   textures are unpacked too, into a ``<name>.d`` folder beside them). Nothing is installed.
   Failures are logged and recorded in the manifest, not fatal.
2. ``scan_extracted``: walk an extracted package tree, keep raster images (jpg/png/webp/tga)
   allowed by the package's ``PackageRule`` (hand-checked include/exclude globs that drop
   abstract wallpapers, screenshots and logos), drop exact file duplicates, decode, and classify
   each image as
   - a *photo*: opaque, short side >= ``MIN_SOURCE_SIDE``, colourful and textured enough to be a
     photograph rather than flat or vector art (``looks_natural``); or
   - a *stamp*: an object photo cut out on a transparent background (tuxpaint stamps), used for
     composites; or rejected, with the reason counted.
3. Photos are de-duplicated by content: exact SHA-256 of the downsized pixels, then an 8x8
   average hash (plus a thumbnail check) to catch resized copies shipped by several packages.
4. The held-out split is a pure function of the content hash (``split_for_hash``), so it never
   changes when other images are added or removed.
5. Composites paste 1-3 seeded stamps on seeded crops of photo backgrounds. A composite takes the
   split of its background and only uses stamps of the same split, so nothing held out leaks
   into training.
6. Everything is written as ``OUT/{train,heldout}/*.jpg`` plus ``OUT/manifest.json``. The same
   inputs produce a byte-identical manifest: inputs are sorted, randomness is seeded, and there
   are no timestamps.

Licences come from each package's ``/usr/share/doc/PKG/copyright``. Machine-readable (DEP-5)
files are parsed and each image gets the licence of the ``Files:`` stanza that matches it
(``match_licence`` explains how installed paths are matched to source patterns), else the
catch-all stanza, else all of the package's licences; the manifest says which (``licence_basis``).

Modules: ``sources`` (packages and path rules), ``licences``, ``extract`` (apt, dpkg, archives),
``images`` (pure pixel helpers), ``scan``, ``select`` (dedupe, split, caps), ``composites``,
``manifest`` and ``build``. Every public name is importable from ``mae_tools.corpus``.
``labelled`` (imported on its own) builds the small labelled demo dataset from the tuxpaint stamps.
"""

from __future__ import annotations

from mae_core.train.manifest import MANIFEST_FILE, find_manifest, manifest_summary

from .base import (
    DEFAULT_COMPOSITES,
    JPEG_QUALITY,
    MANIFEST_VERSION,
    MAX_ASPECT,
    MIN_SOURCE_SIDE,
    MIN_STAMP_SIDE,
    RASTER_SUFFIXES,
    SPLITS,
    TILE_ASPECT,
    CorpusError,
)
from .build import build_corpus, build_corpus_from_extracted
from .extract import (
    ZIP_ARCHIVE_SUFFIXES,
    ExtractedPackage,
    PackageFailure,
    download_deb,
    extract_deb,
    fetch_packages,
    unpack_qt_resources,
    unpack_qt_resources_tree,
    unpack_zip_archive,
    unpack_zip_archives_tree,
)
from .images import (
    Deduplicator,
    NaturalnessStats,
    average_hash,
    composite_stamp,
    hamming,
    looks_natural,
    naturalness_stats,
    pixel_hash,
    resize_short_side,
    split_for_hash,
    tile_boxes,
)
from .licences import CopyrightInfo, licence_for_path, match_licence, parse_copyright, read_copyright
from .manifest import CorpusEntry, CorpusManifest
from .scan import iter_raster_files, scan_extracted
from .sources import DEFAULT_PACKAGES, GLOBAL_EXCLUDE, PACKAGE_RULES, UFOAI_MAX_PHOTOS, PackageRule

__all__ = [
    "DEFAULT_COMPOSITES", "DEFAULT_PACKAGES", "GLOBAL_EXCLUDE", "JPEG_QUALITY", "MANIFEST_FILE",
    "MANIFEST_VERSION", "MAX_ASPECT", "MIN_SOURCE_SIDE", "MIN_STAMP_SIDE", "PACKAGE_RULES",
    "RASTER_SUFFIXES", "SPLITS", "TILE_ASPECT", "UFOAI_MAX_PHOTOS", "ZIP_ARCHIVE_SUFFIXES",
    "CopyrightInfo", "CorpusEntry", "CorpusError", "CorpusManifest", "Deduplicator",
    "ExtractedPackage", "NaturalnessStats", "PackageFailure", "PackageRule", "average_hash",
    "build_corpus", "build_corpus_from_extracted", "composite_stamp", "download_deb",
    "extract_deb", "fetch_packages", "find_manifest", "hamming", "iter_raster_files",
    "licence_for_path", "looks_natural", "manifest_summary", "match_licence", "naturalness_stats",
    "parse_copyright", "pixel_hash", "read_copyright", "resize_short_side", "scan_extracted",
    "split_for_hash", "tile_boxes", "unpack_qt_resources", "unpack_qt_resources_tree",
    "unpack_zip_archive", "unpack_zip_archives_tree",
]  # fmt: skip
