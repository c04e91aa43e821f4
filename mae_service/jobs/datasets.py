"""Datasets a job may train on: the folders of images directly under the configured data roots.

A job names a dataset by its id (the folder name), never by a path, so a request cannot make a
worker read anything outside the data roots. If two roots hold a folder of the same name, the
first root wins.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mae_core.errors import InvalidParameterError
from mae_core.train.data import IMAGE_SUFFIXES

DATASET_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
COUNT_CAP = 10_000  # listing stops counting here; bigger datasets show as "10000+"


@dataclass(frozen=True)
class Dataset:
    """A folder of images under a data root.

    Attributes:
        id: the folder name (what a job request sends).
        path: the folder.
        num_images: images found, counting stopped at :data:`COUNT_CAP`.
        capped: True when there are at least ``COUNT_CAP`` images (the count is a lower bound).
    """

    id: str
    path: Path
    num_images: int
    capped: bool

    def to_dict(self) -> dict:
        return {"id": self.id, "path": str(self.path), "num_images": self.num_images,
                "capped": self.capped}


def count_images(folder: Path, cap: int = COUNT_CAP) -> int:
    """Image files under ``folder`` (recursive), counting at most ``cap``."""
    count = 0
    for _dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        count += sum(1 for name in filenames if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES)
        if count >= cap:
            return cap
    return count


def list_datasets(roots: Sequence[Path]) -> list[Dataset]:
    """Folders with at least one image directly under any root, sorted by id."""
    found: dict[str, Dataset] = {}
    for root in roots:
        try:
            children = sorted(Path(root).iterdir())
        except OSError:
            continue
        for child in children:
            if child.name in found or not DATASET_ID_PATTERN.match(child.name) or not child.is_dir():
                continue
            count = count_images(child)
            if count:
                found[child.name] = Dataset(child.name, child, count, count >= COUNT_CAP)
    return sorted(found.values(), key=lambda d: d.id)


def find_dataset(roots: Sequence[Path], dataset_id: str) -> Dataset:
    """The dataset called ``dataset_id``, or an InvalidParameterError that lists the choices."""
    datasets = list_datasets(roots)
    for dataset in datasets:
        if dataset.id == dataset_id:
            return dataset
    where = ", ".join(str(r) for r in roots) or "(none configured)"
    if not datasets:
        raise InvalidParameterError(
            f"dataset {dataset_id!r} not found: there are no datasets yet. Put a folder of images "
            f"under a data root ({where}; set MAE_DATA_ROOTS to change them) and choose it by name")
    names = ", ".join(d.id for d in datasets)
    raise InvalidParameterError(
        f"unknown dataset {dataset_id!r}; choose one of: {names} (folders of images under {where})")
