"""The corpus ``manifest.json``: one record per output image and a summary per package."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from mae_core.io_utils import write_json_atomic

from .base import MANIFEST_VERSION, SPLITS
from .extract import ExtractedPackage


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


def package_summaries(
    packages: Iterable[ExtractedPackage],
    entries: Sequence[CorpusEntry],
    stamp_counts: Counter,
    rejected: Counter,
) -> list[dict[str, Any]]:
    """Per package: version, licences, photos per split, stamps found and pasted, rejections.

    ``stamp_counts`` maps a package name to the number of its usable cut-outs.
    """
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
                "stamps": stamp_counts.get(pkg.name, 0),
                "stamps_pasted": len(pasted),
                "rejected": {
                    reason: n for (name, reason), n in sorted(rejected.items()) if name == pkg.name
                },
            }
        )
    return rows


def write_manifest(path: Path, manifest: CorpusManifest) -> None:
    write_json_atomic(path, manifest.to_dict())
