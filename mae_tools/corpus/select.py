"""Choosing what goes in: content de-duplication, the held-out split and per-package caps."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Mapping

from .images import Deduplicator, split_for_hash
from .scan import _Photo, _Stamp
from .sources import PackageRule

logger = logging.getLogger(__name__)


def select_photos(
    photos: list[_Photo],
    heldout_fraction: float,
    rules: Mapping[str, PackageRule],
    rejected: Counter,
) -> list[_Photo]:
    """Distinct photos with their split, at most each package's cap, sorted by content hash."""
    dedupe = Deduplicator()
    kept: list[_Photo] = []
    for ph in photos:
        dup = dedupe.check(f"{ph.package.name}:{ph.source_path}", ph.rgb, ph.content_hash)
        if dup is not None:
            logger.debug("%s:%s duplicates %s", ph.package.name, ph.source_path, dup)
            rejected[(ph.package.name, "duplicate-image")] += 1
            continue
        ph.split = split_for_hash(ph.content_hash, heldout_fraction)
        kept.append(ph)
    kept = apply_caps(kept, rules, rejected)
    kept.sort(key=lambda p: p.content_hash)
    return kept


def select_stamps(stamps: list[_Stamp], heldout_fraction: float, rejected: Counter) -> list[_Stamp]:
    """Distinct stamps (exact pixel hash) with their split, sorted by content hash."""
    seen: set[str] = set()
    kept: list[_Stamp] = []
    for st in stamps:
        if st.content_hash in seen:
            rejected[(st.package.name, "duplicate-stamp")] += 1
            continue
        seen.add(st.content_hash)
        st.split = split_for_hash(st.content_hash, heldout_fraction)
        kept.append(st)
    kept.sort(key=lambda s: s.content_hash)
    return kept


def apply_caps(
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
