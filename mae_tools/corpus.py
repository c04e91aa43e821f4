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
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import logging
import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from mae_core.errors import MAEError
from mae_core.imaging import to_rgb
from mae_core.train.manifest import MANIFEST_FILE, find_manifest, manifest_summary  # noqa: F401

logger = logging.getLogger(__name__)

DEFAULT_PACKAGES: tuple[str, ...] = (
    # Desktop wallpapers: large nature/landscape photographs.
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "sddm-theme-maldives",
    # Educational software: photo templates/backgrounds, ~230 photos of animals, monuments, tools
    # and places (GCompris, inside Qt resource files), and ~300 cut-out object photos (stamps).
    "gcompris-qt-data",
    "tuxpaint-data",
    "tuxpaint-stamps-default",
    "tuxtype-data",
    "tuxmath-data",
    "palapeli-data",
    "kalzium-data",
    # Sample images shipped with scientific Python libraries and OpenCV's examples.
    "python3-skimage",
    "python3-sklearn",
    "python-matplotlib-data",
    "opencv-doc",
    # Astronomy photographs (nebulae, galaxies), capped so they do not dominate.
    "stellarium-data",
    # Game textures photographed from real surfaces (brick, wood, doors, grass, rock, carpets;
    # UFO:AI's copyright file gives a licence per texture) and rendered mountain skyboxes.
    "ufoai-textures",
    "extremetuxracer-data",
    "colobot-common-textures",
)
"""Packages checked by hand (Debian 12). Left out on purpose: gnome-backgrounds, ukui-wallpapers,
sway-backgrounds, xfdesktop4-data, sddm-theme-elarun and lomiri-wallpapers ship only abstract or
vector art; kstars-data, marble-data and digikam-data only screenshots; ulcc clip art; pysiogame
drawn clip art; neverball-data screenshots; trigger-rally-data, nexuiz-textures (a .pk3 of game
art) mypaint-data and sddm-theme-maui nothing that passes the photo filter at 224 px."""


@dataclass(frozen=True)
class PackageRule:
    """Which files of a package are worth decoding.

    Patterns are ``fnmatch`` globs on the installed path (``/usr/share/...``).

    Attributes:
        include: if not empty, only paths matching one of these are used.
        exclude: paths matching any of these are skipped (abstract art, logos, screenshots).
        max_photos: keep at most this many photos (those with the smallest content hashes,
            so the choice is stable), for packages that would otherwise dominate.
        stamps: whether the package's cut-outs may be pasted into composites.
        backgrounds: whether the package's photos may serve as composite backgrounds.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_photos: int | None = None
    stamps: bool = True
    backgrounds: bool = True

    def allows(self, installed_path: str) -> bool:
        if any(fnmatch.fnmatchcase(installed_path, p) for p in GLOBAL_EXCLUDE + self.exclude):
            return False
        return not self.include or any(fnmatch.fnmatchcase(installed_path, p) for p in self.include)


GLOBAL_EXCLUDE: tuple[str, ...] = (
    "*/doc/HTML/*",  # KDE handbooks: screenshots
    "*/help/*",
    "*/icons/*",
    "*screenshot*",
)

UFOAI_MAX_PHOTOS = 400  # of ~550 usable textures: photos of places stay the majority

_PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)  # fmt: skip

PACKAGE_RULES: dict[str, PackageRule] = {
    "mate-backgrounds": PackageRule(include=("*/backgrounds/mate/nature/*",)),
    "plasma-workspace-wallpapers": PackageRule(
        include=tuple(f"*/wallpapers/{name}/contents/images/*" for name in _PLASMA_PHOTOS)
    ),
    "lomiri-wallpapers-16.04": PackageRule(exclude=("*/umang_by_*",)),
    "lomiri-wallpapers-20.04": PackageRule(exclude=("*/Fossa_by_*", "*/Painting-Colors_by_*")),
    "sddm-theme-maldives": PackageRule(include=("*/maldives/background.jpg",)),
    # GCompris cut-outs are mostly jigsaw pieces of paintings: not objects.
    "gcompris-qt-data": PackageRule(
        include=("*.rcc.d/*",), exclude=("*/lang.rcc.d/*",), stamps=False
    ),
    "tuxpaint-data": PackageRule(include=("*/tuxpaint/templates/*", "*/tuxpaint/starters/*")),
    "tuxpaint-stamps-default": PackageRule(exclude=("*/cartoon/*", "*/symbols/*")),
    "tuxtype-data": PackageRule(
        include=("*/images/kcas*", "*/images/hidden.jpg", "*/images/photo.png")
    ),
    "tuxmath-data": PackageRule(include=("*/images/backgrounds/*",), backgrounds=False),
    "palapeli-data": PackageRule(include=("*/palapeli/collection/*",)),
    "kalzium-data": PackageRule(include=("*/kalzium/data/toolpics/*",)),
    "python3-skimage": PackageRule(include=("*/skimage/data/*",)),
    "python3-sklearn": PackageRule(include=("*/sklearn/datasets/images/*",)),
    "python-matplotlib-data": PackageRule(include=("*/mpl-data/sample_data/*",)),
    "opencv-doc": PackageRule(
        include=("*/opencv-doc/examples/data/*",),
        exclude=("*/WindowsLogo.*", "*/sudoku.*", "*/pca_test*", "*/pic[0-9].*", "*/lena*"),
    ),
    "stellarium-data": PackageRule(
        include=("*/nebulae/default/*",), max_photos=100, backgrounds=False
    ),
    # Normal/gloss/specular maps (*_nm, *_gm, ...) are not pictures; lights, animations, tech
    # panels, alien and UFO hulls and vehicles are game graphics; crates repeat one design.
    "ufoai-textures": PackageRule(
        include=("*/0textures.pk3.d/textures/*",),
        exclude=(
            "*_[a-z]m.*", "*/tex_lights/*", "*/tex_anim/*", "*/tex_tech/*", "*/tex_ufo/*",
            "*/tex_alienb/*", "*/tex_vehicles/*", "*crate*",
        ),
        max_photos=UFOAI_MAX_PHOTOS,
        stamps=False,
    ),
    # Ground textures and skyboxes; course previews are screenshots.
    "extremetuxracer-data": PackageRule(
        include=("*/etr/terrains/*", "*/etr/env/*"), stamps=False
    ),
    # Clouds, ground and a Mars map strip; the rest are UI atlases and object skins.
    "colobot-common-textures": PackageRule(
        include=tuple(
            f"*/games/colobot/textures/{name}*"
            for name in ("cloud", "desert", "dirty", "green", "mars", "roc", "water", "chili")
        ),
        stamps=False,
    ),
}

RASTER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tga"})
MIN_SOURCE_SIDE = 224  # originals smaller than this on the short side are not used
MIN_STAMP_SIDE = 96  # a stamp's opaque bounding box must be at least this big on both sides
MAX_ASPECT = 2.0  # wider images (panoramas) are cut into several tiles of TILE_ASPECT
TILE_ASPECT = 1.5
JPEG_QUALITY = 90
DEFAULT_COMPOSITES = 300  # stamp-on-photo scenes added to the ~930 distinct photos
MANIFEST_VERSION = 1
SPLITS = ("train", "heldout")


class CorpusError(MAEError):
    """The corpus cannot be built: apt tools missing, bad output folder, no usable images."""


# ----------------------------------------------------------------------------------------------
# Data records
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyrightInfo:
    """Licence facts read from one package's ``/usr/share/doc/PKG/copyright``.

    Attributes:
        licences: sorted short licence names found (``License:`` fields, or keywords guessed in a
            free-form file); ``("unknown",)`` when the file is missing.
        summary: the first non-empty lines of the file, for people to read.
        machine_readable: whether the file follows the DEP-5 format.
        stanzas: DEP-5 ``(patterns, licence)`` pairs in file order.
    """

    licences: tuple[str, ...]
    summary: str
    machine_readable: bool
    stanzas: tuple[tuple[tuple[str, ...], str], ...] = ()


@dataclass(frozen=True)
class ExtractedPackage:
    """A Debian package unpacked into ``root`` (``dpkg -x`` layout: ``root/usr/share/...``).

    Attributes:
        name: package name.
        version: package version string.
        root: folder the package was extracted into.
        copyright: licence facts; read from ``root`` when built with ``from_root``.
        deb_sha256: SHA-256 of the ``.deb`` it came from (empty for hand-made test folders).
    """

    name: str
    version: str
    root: Path
    copyright: CopyrightInfo
    deb_sha256: str = ""

    @classmethod
    def from_root(cls, name: str, version: str, root: Path, deb_sha256: str = "") -> ExtractedPackage:
        return cls(name, version, Path(root), read_copyright(Path(root), name), deb_sha256)


@dataclass(frozen=True)
class PackageFailure:
    """A package that could not be used, and why."""

    package: str
    reason: str


@dataclass
class CorpusEntry:
    """One output image.

    Attributes:
        path: path relative to the corpus folder, e.g. ``train/gnome-backgrounds__wood_ab12.jpg``.
        split: ``"train"`` or ``"heldout"``.
        kind: ``"photo"`` (one source image, possibly one tile of a panorama) or ``"composite"``.
        package, version, source_path, licence: provenance of a photo (for composites, of the
            background; the stamps are listed in ``stamps``, and ``licence`` joins them all).
        licence_basis: how the licence was matched to the file (see ``match_licence``).
        sha256: SHA-256 of the written JPEG file.
        content_hash: SHA-256 of the downsized source pixels (drives the split and dedupe).
        width, height: size of the written image.
        crop: ``[left, top, right, bottom]`` in resized-source pixels when only part was used.
        stamps: for composites, the pasted stamps with their placement.
    """

    path: str
    split: str
    kind: str
    package: str
    version: str
    source_path: str
    licence: str
    sha256: str
    content_hash: str
    width: int
    height: int
    licence_basis: str = ""
    crop: list[int] | None = None
    stamps: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["crop"] is None:
            del d["crop"]
        if d["stamps"] is None:
            del d["stamps"]
        return d


@dataclass
class CorpusManifest:
    """What ``build_corpus`` produced, as written to ``manifest.json``.

    Attributes:
        params: the build parameters (size, held-out fraction, composites, seed).
        packages: per-package summary: version, licences, copyright summary, counts per split,
            rejection reasons.
        failures: packages that could not be downloaded or extracted.
        entries: one record per output image, sorted by path.
    """

    params: dict[str, Any]
    packages: list[dict[str, Any]]
    failures: list[dict[str, str]]
    entries: list[CorpusEntry]

    def counts(self) -> dict[str, int]:
        """Number of images per split."""
        c = Counter(e.split for e in self.entries)
        return {s: c.get(s, 0) for s in SPLITS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "params": self.params,
            "counts": {**self.counts(), "total": len(self.entries)},
            "packages": self.packages,
            "failures": self.failures,
            "entries": [e.to_dict() for e in self.entries],
        }


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


# ----------------------------------------------------------------------------------------------
# Licences
# ----------------------------------------------------------------------------------------------

_LICENCE_KEYWORDS = (
    ("CC0", r"\bCC0\b|creative commons zero"),
    ("CC-BY-SA", r"CC[- ]BY[- ]SA|attribution[- ]share ?alike"),
    ("CC-BY", r"CC[- ]BY(?![- ]SA)|creative commons attribution(?![- ]share)"),
    ("GPL", r"\bGPL\b|GNU General Public License"),
    ("LGPL", r"\bLGPL\b|GNU Lesser General Public License"),
    ("BSD", r"\bBSD\b"),
    ("MIT", r"\bMIT\b|\bExpat\b"),
    ("public-domain", r"public[- ]domain"),
)


def parse_copyright(text: str) -> CopyrightInfo:
    """Parse a Debian copyright file (DEP-5 when it says so, free-form otherwise)."""
    lines = text.splitlines()
    summary = "\n".join([ln.rstrip() for ln in lines if ln.strip()][:8])
    machine_readable = bool(re.match(r"^Format:\s*\S+", text.lstrip()))
    stanzas: list[tuple[tuple[str, ...], str]] = []
    licences: set[str] = set()
    if machine_readable:
        for para in re.split(r"\n\s*\n", text):
            fields = _dep5_fields(para)
            lic_text = fields.get("license", "")
            lic = lic_text.split("\n", 1)[0].strip()
            if "files" in fields and "license" in fields and not lic:
                # Licence given only as text: name it by keywords found in the text.
                lic = " / ".join(_guess_licences(lic_text)) or "see-copyright-text"
            if "files" in fields and lic:
                patterns = tuple(fields["files"].split())
                stanzas.append((patterns, lic))
                licences.add(lic)
    else:
        licences.update(_guess_licences(text))
    return CopyrightInfo(
        licences=tuple(sorted(licences)) or ("unknown",),
        summary=summary,
        machine_readable=machine_readable,
        stanzas=tuple(stanzas),
    )


def _guess_licences(text: str) -> list[str]:
    return [name for name, pattern in _LICENCE_KEYWORDS if re.search(pattern, text, re.IGNORECASE)]


def _dep5_fields(paragraph: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in paragraph.splitlines():
        if line[:1] in (" ", "\t") and key is not None:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def read_copyright(root: Path, package: str) -> CopyrightInfo:
    """Licence facts from ``root/usr/share/doc/PACKAGE/copyright`` (``unknown`` if absent)."""
    path = root / "usr" / "share" / "doc" / package / "copyright"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        logger.warning("%s ships no copyright file at %s; licence recorded as unknown", package, path)
        return CopyrightInfo(("unknown",), "", False)
    return parse_copyright(text)


def match_licence(info: CopyrightInfo, installed_path: str) -> tuple[str, str]:
    """Licence of one installed file and how it was found.

    DEP-5 ``Files:`` patterns are relative to the *source* tree, while we see *installed* paths
    (and sometimes converted files: GCompris ships ``x.jpg`` from its sources as ``x.webp``). A
    stanza therefore matches at one of these levels, best first:

    - ``"exact"``: the pattern matches a trailing part of the installed path;
    - ``"converted"``: it does once the pattern's file extension is replaced by the file's;
    - ``"basename"``: the pattern's last component is a plain file name (no wildcard) equal to
      the file's name, up to the extension (packaging moved the file to another folder).

    A file unpacked from an archive (``base/0textures.pk3.d/textures/x.png``) is matched both
    at its unpacked path and with the ``<archive>.d`` folder left out (``base/textures/x.png``),
    since the source tree held the files, not the archive.

    The best level wins; within a level, the last stanza wins, as in DEP-5. Otherwise the
    catch-all ``Files: *`` stanza applies (``"catch-all"``), else every licence of the package
    (``"package"``).

    Returns:
        ``(licence, basis)``.
    """
    parts = installed_path.strip("/").split("/")
    suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
    # A member of an unpacked archive is also matched as if the archive were a plain folder:
    # ufoai's copyright names base/textures/x.png for what ships in base/0textures.pk3.
    flat = [p for p in parts if not _UNPACKED_ARCHIVE.fullmatch(p)]
    if len(flat) < len(parts):
        suffixes += ["/".join(flat[i:]) for i in range(len(flat))]
    name = parts[-1]
    ext = os.path.splitext(name)[1]
    best: tuple[int, str] | None = None
    for patterns, lic in info.stanzas:
        for pattern in patterns:
            if pattern == "*":
                continue
            stem, pext = os.path.splitext(pattern)
            level = 0
            if any(fnmatch.fnmatchcase(sfx, pattern) for sfx in suffixes):
                level = 3
            elif pext and ext and any(fnmatch.fnmatchcase(sfx, stem + ext) for sfx in suffixes):
                level = 2
            else:
                base = pattern.rsplit("/", 1)[-1]
                if "/" in pattern and not any(ch in base for ch in "*?[") and (
                    fnmatch.fnmatchcase(name, base)
                    or (pext and ext and fnmatch.fnmatchcase(name, os.path.splitext(base)[0] + ext))
                ):
                    level = 1
            if level and (best is None or level >= best[0]):
                best = (level, lic)
    if best is not None:
        return best[1], {3: "exact", 2: "converted", 1: "basename"}[best[0]]
    catch_all = [lic for patterns, lic in info.stanzas if "*" in patterns]
    if catch_all:
        return catch_all[-1], "catch-all"
    return " / ".join(info.licences), "package"


_UNPACKED_ARCHIVE = re.compile(r".+\.(?:rcc|pk3)\.d")


def licence_for_path(info: CopyrightInfo, installed_path: str) -> str:
    """Licence of one installed file (see ``match_licence``)."""
    return match_licence(info, installed_path)[0]


# ----------------------------------------------------------------------------------------------
# Download and extract
# ----------------------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _candidate_deb_name(package: str) -> str | None:
    """Expected ``.deb`` file name of the candidate version (from ``apt-cache show``)."""
    res = _run(["apt-cache", "show", "--no-all-versions", package])
    if res.returncode != 0:
        return None
    m = re.search(r"^Filename:\s*(\S+)", res.stdout, flags=re.MULTILINE)
    return os.path.basename(m.group(1)) if m else None


def download_deb(package: str, cache_dir: Path) -> Path:
    """The package's ``.deb`` in ``cache_dir``, downloaded with ``apt-get download`` if needed.

    Raises:
        CorpusError: apt-get is missing, or the package cannot be downloaded and no cached copy
            exists.
    """
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise CorpusError(
            "apt-get/dpkg-deb not found: building the corpus needs a Debian-based system "
            "(or pass already extracted packages to build_corpus_from_extracted)"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    expected = _candidate_deb_name(package)
    if expected and (cache_dir / expected).is_file():
        return cache_dir / expected
    res = _run(["apt-get", "download", package], cwd=cache_dir)
    if expected and (cache_dir / expected).is_file():
        return cache_dir / expected
    cached = sorted(cache_dir.glob(f"{package}_*.deb"))
    if cached:
        if res.returncode != 0:
            logger.warning("apt-get download %s failed; using cached %s", package, cached[-1].name)
        return cached[-1]
    msg = (res.stderr or res.stdout).strip().splitlines()
    raise CorpusError(
        f"cannot download Debian package {package!r}: {msg[-1] if msg else 'unknown error'} "
        "(run `apt-get update` first, or check the name with `apt-cache policy`)"
    )


def extract_deb(deb: Path, dest: Path) -> ExtractedPackage:
    """``dpkg -x`` a ``.deb`` into ``dest`` (nothing is installed) and read its metadata."""
    fields = _run(["dpkg-deb", "-f", str(deb), "Package", "Version"])
    if fields.returncode != 0:
        raise CorpusError(f"{deb} is not a readable .deb: {fields.stderr.strip()}")
    meta = dict(
        line.split(":", 1) for line in fields.stdout.splitlines() if ":" in line
    )
    name, version = meta["Package"].strip(), meta["Version"].strip()
    dest.mkdir(parents=True, exist_ok=True)
    res = _run(["dpkg", "-x", str(deb), str(dest)])
    if res.returncode != 0:
        raise CorpusError(f"dpkg -x {deb.name} failed: {res.stderr.strip()}")
    unpacked = unpack_qt_resources_tree(dest)
    if unpacked:
        logger.info("%s: unpacked %d images from Qt resource files", name, unpacked)
    unpacked = unpack_zip_archives_tree(dest)
    if unpacked:
        logger.info("%s: unpacked %d images from .pk3 archives", name, unpacked)
    return ExtractedPackage.from_root(name, version, dest, _sha256_file(deb))


def unpack_qt_resources(path: Path, dest: Path) -> int:
    """Unpack the image files of a Qt binary resource file (``.rcc``) into ``dest``.

    GCompris ships its pictures inside ``.rcc`` files. The format (versions 1-3) is a header
    (``qres``, version, tree/data/names offsets), a tree of fixed-size nodes, a names table of
    UTF-16 strings and a data table of length-prefixed blobs, zlib-compressed when flag 1 is set
    (then prefixed by the uncompressed length). Zstd-compressed entries (flag 4) are skipped.
    Files keep their resource paths, so DEP-5 patterns such as ``src/activities/x/*`` still match.

    Returns:
        Number of raster files written.

    Raises:
        CorpusError: the file is not a readable Qt resource file.
    """
    blob = path.read_bytes()
    if blob[:4] != b"qres" or len(blob) < 20:
        raise CorpusError(f"{path} is not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    if version not in (1, 2, 3):
        raise CorpusError(f"{path}: unsupported Qt resource version {version}")
    node_size = 14 if version == 1 else 22
    written = 0

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        start = names + offset + 6  # length (2) + hash (4)
        return blob[start : start + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str, depth: int) -> None:
        nonlocal written
        if depth > 64:
            raise CorpusError(f"{path}: resource tree too deep (corrupt file?)")
        at = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[at : at + 6])
        name = name_at(name_offset) if index else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", blob[at + 6 : at + 14])
            for child in range(first, first + count):
                walk(child, f"{prefix}{name}/" if index else "", depth + 1)
            return
        rel = prefix + name
        if Path(rel).suffix.lower() not in RASTER_SUFFIXES or flags & 4:
            return
        (data_offset,) = struct.unpack(">I", blob[at + 10 : at + 14])
        start = data + data_offset
        (size,) = struct.unpack(">I", blob[start : start + 4])
        payload = blob[start + 4 : start + 4 + size]
        if flags & 1:
            payload = zlib.decompress(payload[4:])
        target = dest / rel
        if ".." in Path(rel).parts:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
        written += 1

    try:
        walk(0, "", 0)
    except (struct.error, zlib.error, UnicodeDecodeError, IndexError) as exc:
        raise CorpusError(f"{path}: corrupt Qt resource file ({exc})") from exc
    return written


def unpack_qt_resources_tree(root: Path) -> int:
    """Unpack every ``*.rcc`` below ``root`` into a sibling ``<name>.rcc.d`` folder."""
    total = 0
    for rcc in sorted(root.rglob("*.rcc")):
        if rcc.is_file() and not rcc.is_symlink():
            try:
                total += unpack_qt_resources(rcc, rcc.with_name(rcc.name + ".d"))
            except CorpusError as exc:
                logger.warning("skipping %s", exc)
    return total


ZIP_ARCHIVE_SUFFIXES = (".pk3",)  # game data archives (plain zip files) holding textures


def unpack_zip_archive(path: Path, dest: Path) -> int:
    """Extract the raster images of a zip archive (``.pk3``) into ``dest``, keeping member paths.

    Members with absolute paths or ``..`` components are skipped, so nothing is written
    outside ``dest``.

    Returns:
        Number of raster files written.

    Raises:
        CorpusError: the file is not a readable zip archive.
    """
    import zipfile

    written = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                rel = Path(info.filename)
                if info.is_dir() or rel.suffix.lower() not in RASTER_SUFFIXES:
                    continue
                if rel.is_absolute() or ".." in rel.parts or info.filename.startswith(("/", "\\")):
                    logger.warning("%s: skipping unsafe member %r", path.name, info.filename)
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                written += 1
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CorpusError(f"{path}: not a readable zip archive ({exc})") from exc
    return written


def unpack_zip_archives_tree(root: Path) -> int:
    """Unpack every ``*.pk3`` below ``root`` into a sibling ``<name>.pk3.d`` folder."""
    total = 0
    for suffix in ZIP_ARCHIVE_SUFFIXES:
        for archive in sorted(root.rglob("*" + suffix)):
            if archive.is_file() and not archive.is_symlink():
                try:
                    total += unpack_zip_archive(archive, archive.with_name(archive.name + ".d"))
                except CorpusError as exc:
                    logger.warning("skipping %s", exc)
    return total


def fetch_packages(
    packages: Sequence[str], cache_dir: Path, extract_dir: Path
) -> tuple[list[ExtractedPackage], list[PackageFailure]]:
    """Download and extract every package; failures are logged, recorded and skipped.

    Raises:
        CorpusError: when apt-get itself is unavailable (nothing could work).
    """
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise CorpusError(
            "apt-get/dpkg not found: building the corpus needs a Debian-based system"
        )
    extracted: list[ExtractedPackage] = []
    failures: list[PackageFailure] = []
    for package in tqdm(sorted(set(packages)), desc="packages", unit="pkg"):
        try:
            deb = download_deb(package, cache_dir)
            extracted.append(extract_deb(deb, extract_dir / package))
        except CorpusError as exc:
            logger.warning("skipping %s: %s", package, exc)
            failures.append(PackageFailure(package, str(exc)))
    return extracted, failures


# ----------------------------------------------------------------------------------------------
# Pure image helpers
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Scanning an extracted package
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_stem(text: str, limit: int = 48) -> str:
    return _SAFE.sub("-", text).strip("-.")[:limit] or "img"


def _encode_jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


def _make_composites(
    photos: Sequence[_Photo],
    stamps: Sequence[_Stamp],
    n: int,
    size: int,
    seed: int,
) -> list[tuple[np.ndarray, _Photo, list[int], list[dict[str, Any]]]]:
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
        pool = by_split[bg.split] or by_split["train"]
        H, W = bg.rgb.shape[:2]
        side = int(round(min(H, W) * rng.uniform(0.55, 1.0)))
        left = int(rng.integers(0, W - side + 1))
        top = int(rng.integers(0, H - side + 1))
        crop = bg.rgb[top : top + side, left : left + side]
        canvas = np.asarray(
            Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8
        )
        placed = []
        for _k in range(int(rng.integers(1, 4))):
            st = pool[int(rng.integers(len(pool)))]
            sh, sw = st.rgba.shape[:2]
            longest = rng.uniform(0.3, 0.75) * size
            height = max(8, int(round(longest * sh / max(sh, sw))))
            width = max(1, round(sw * height / sh))
            x = int(rng.integers(-width // 4, size - 3 * width // 4 + 1))
            y = int(rng.integers(-height // 8, size - 3 * height // 4 + 1))
            flip = bool(rng.integers(2))
            lic, basis = match_licence(st.package.copyright, st.source_path)
            canvas = composite_stamp(canvas, st.rgba, (x, y), height=height, flip=flip)
            placed.append(
                {
                    "package": st.package.name,
                    "version": st.package.version,
                    "source_path": st.source_path,
                    "licence": lic,
                    "licence_basis": basis,
                    "box": [x, y, x + width, y + height],
                    "flip": flip,
                }
            )
        out.append((canvas, bg, [left, top, left + side, top + side], placed))
    return out


def _prepare_out_dir(out_dir: Path) -> Path:
    """A fresh staging folder beside ``out_dir``; refuses to clobber a non-corpus folder."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise CorpusError(f"{out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).is_file():
            raise CorpusError(
                f"{out_dir} is not empty and holds no manifest.json: refusing to overwrite it; "
                "choose a new or empty folder"
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))


def _commit_out_dir(staging: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    if size < 32:
        raise CorpusError(f"size must be at least 32 px, got {size}")
    if composites < 0:
        raise CorpusError(f"composites must be >= 0, got {composites}")
    split_for_hash("", heldout_fraction)  # validates the fraction
    out_dir = Path(out_dir)
    workers = workers if workers is not None else max(1, min(2, os.cpu_count() or 1))

    rules = PACKAGE_RULES if rules is None else rules
    scan = scan_extracted(packages, size, rules=rules, workers=workers)

    dedupe = Deduplicator()
    photos: list[_Photo] = []
    for ph in scan.photos:
        dup = dedupe.check(f"{ph.package.name}:{ph.source_path}", ph.rgb, ph.content_hash)
        if dup is not None:
            logger.debug("%s:%s duplicates %s", ph.package.name, ph.source_path, dup)
            scan.rejected[(ph.package.name, "duplicate-image")] += 1
            continue
        ph.split = split_for_hash(ph.content_hash, heldout_fraction)
        photos.append(ph)
    photos = _apply_caps(photos, rules, scan.rejected)
    stamp_seen: set[str] = set()
    stamps: list[_Stamp] = []
    for st in scan.stamps:
        if st.content_hash in stamp_seen:
            scan.rejected[(st.package.name, "duplicate-stamp")] += 1
            continue
        stamp_seen.add(st.content_hash)
        st.split = split_for_hash(st.content_hash, heldout_fraction)
        stamps.append(st)
    if not photos:
        raise CorpusError(
            "no usable photographs found in the given packages "
            f"({', '.join(p.name for p in packages) or 'none'})"
        )
    photos.sort(key=lambda p: p.content_hash)
    stamps.sort(key=lambda s: s.content_hash)
    logger.info("%d distinct photos, %d stamps", len(photos), len(stamps))

    def rule(name: str) -> PackageRule:
        return rules.get(name, PackageRule())

    backgrounds = [p for p in photos if rule(p.package.name).backgrounds]
    cutouts = [s for s in stamps if rule(s.package.name).stamps]

    staging = _prepare_out_dir(out_dir)
    try:
        for split in SPLITS:
            (staging / split).mkdir()
        entries: list[CorpusEntry] = []

        def write(rel: str, rgb: np.ndarray) -> str:
            data = _encode_jpeg(rgb)
            (staging / rel).write_bytes(data)
            return hashlib.sha256(data).hexdigest()

        for ph in tqdm(photos, desc="write", unit="img"):
            H, W = ph.rgb.shape[:2]
            boxes = tile_boxes(W, H)
            stem = f"{_safe_stem(ph.package.name, 32)}__{_safe_stem(Path(ph.source_path).stem)}"
            lic, basis = match_licence(ph.package.copyright, ph.source_path)
            for i, box in enumerate(boxes):
                tile = ph.rgb[box[1] : box[3], box[0] : box[2]]
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
                        sha256=write(rel, np.ascontiguousarray(tile)),
                        content_hash=ph.content_hash,
                        width=int(tile.shape[1]),
                        height=int(tile.shape[0]),
                        crop=list(box) if len(boxes) > 1 else None,
                    )
                )

        for i, (rgb, bg, crop, placed) in enumerate(
            _make_composites(backgrounds, cutouts, composites, size, seed)
        ):
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
                    sha256=write(rel, rgb),
                    content_hash=chash,
                    width=size,
                    height=size,
                    crop=crop,
                    stamps=placed,
                )
            )

        entries.sort(key=lambda e: e.path)
        manifest = CorpusManifest(
            params={
                "size": size,
                "heldout_fraction": heldout_fraction,
                "composites": composites,
                "seed": seed,
                "jpeg_quality": JPEG_QUALITY,
                "min_source_side": MIN_SOURCE_SIDE,
            },
            packages=_package_summaries(packages, entries, cutouts, scan.rejected),
            failures=[asdict(f) for f in sorted(failures, key=lambda f: f.package)],
            entries=entries,
        )
        _write_manifest(staging / MANIFEST_FILE, manifest)
        _commit_out_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    counts = manifest.counts()
    logger.info(
        "corpus written to %s: %d train, %d heldout", out_dir, counts["train"], counts["heldout"]
    )
    return manifest


def _apply_caps(
    photos: list[_Photo], rules: Mapping[str, PackageRule], rejected: Counter
) -> list[_Photo]:
    """Keep at most ``max_photos`` per package: those with the smallest content hashes."""
    kept: list[_Photo] = []
    by_package: dict[str, list[_Photo]] = {}
    for ph in photos:
        by_package.setdefault(ph.package.name, []).append(ph)
    for name, group in sorted(by_package.items()):
        cap = rules.get(name, PackageRule()).max_photos
        group = sorted(group, key=lambda p: p.content_hash)
        if cap is not None and len(group) > cap:
            rejected[(name, "over-package-cap")] += len(group) - cap
            group = group[:cap]
        kept.extend(group)
    return kept


def _package_summaries(
    packages: Iterable[ExtractedPackage],
    entries: Sequence[CorpusEntry],
    stamps: Sequence[_Stamp],
    rejected: Counter,
) -> list[dict[str, Any]]:
    rows = []
    for pkg in sorted(packages, key=lambda p: p.name):
        mine = [e for e in entries if e.package == pkg.name and e.kind == "photo"]
        pasted = [
            s for e in entries if e.stamps for s in e.stamps if s["package"] == pkg.name
        ]
        rows.append(
            {
                "package": pkg.name,
                "version": pkg.version,
                "deb_sha256": pkg.deb_sha256,
                "licences": list(pkg.copyright.licences),
                "licences_used": sorted({e.licence for e in mine} | {s["licence"] for s in pasted}),
                "copyright_machine_readable": pkg.copyright.machine_readable,
                "copyright_summary": pkg.copyright.summary,
                "photos": {s: sum(e.split == s for e in mine) for s in SPLITS},
                "photo_files": len(mine),
                "composite_backgrounds": sum(
                    e.package == pkg.name and e.kind == "composite" for e in entries
                ),
                "stamps": sum(st.package.name == pkg.name for st in stamps),
                "stamps_pasted": len(pasted),
                "rejected": {
                    reason: n for (name, reason), n in sorted(rejected.items()) if name == pkg.name
                },
            }
        )
    return rows


def _write_manifest(path: Path, manifest: CorpusManifest) -> None:
    try:
        from mae_core.io_utils import write_json_atomic
    except ImportError:  # pragma: no cover - io_utils is part of mae_core
        write_json_atomic = None
    obj = manifest.to_dict()
    if write_json_atomic is not None:
        write_json_atomic(path, obj)
        return
    import json

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
