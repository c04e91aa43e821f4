"""Download (``apt-get download``) and extract (``dpkg -x``) packages, unpacking the Qt resource
files and zip archives that hold their pictures. Nothing is installed."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from .base import RASTER_SUFFIXES, CorpusError
from .licences import CopyrightInfo, read_copyright

logger = logging.getLogger(__name__)


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
