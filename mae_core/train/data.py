"""Training data: any folder of images, paper augmentation, resumable sharded sampling.

Augmentation randomness is a pure function of (seed, epoch, sample index), not of a global RNG,
so a resumed run, a run with more DataLoader workers and a DDP run all see the same crops. The
sampler passes the epoch inside each key (``epoch * len(dataset) + index``), which lets
persistent DataLoader workers (who never see ``set_epoch`` calls) follow along.
Unreadable files are skipped, counted and reported; they never stop an epoch.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, DistributedSampler
from torchvision.transforms import InterpolationMode
from tqdm.auto import tqdm

from ..errors import TrainingError
from ..imaging import fit_image, to_rgb, to_tensor

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def find_images(root: str | Path) -> list[Path]:
    """All image files under ``root`` (recursive, sorted; covers the ImageFolder layout)."""
    root = Path(root)
    if not root.is_dir():
        raise TrainingError(f"data folder {root} does not exist or is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise TrainingError(
            f"no images found under {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files


def _sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + index)
    return g


def random_resized_crop_box(
    width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float],
    g: torch.Generator,
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a RandomResizedCrop, drawn from ``g`` (torchvision's algorithm)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        r = torch.rand(3, generator=g).tolist()
        target_area = area * (scale[0] + (scale[1] - scale[0]) * r[0])
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * r[1])
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=g))
            left = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return top, left, h, w
    in_ratio = width / height  # fallback: centre crop
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_to_tensor(
    img: Image.Image, size: int, g: torch.Generator | None,
    scale: tuple[float, float] = (0.2, 1.0), hflip: bool = True,
) -> torch.Tensor:
    """RandomResizedCrop(``scale``, bicubic) and an optional flip drawn from ``g``, or resize +
    centre crop when ``g`` is None; returned as a normalised tensor [3, size, size]."""
    if g is None:
        return to_tensor(fit_image(img, (size, size), 1, "crop"))
    top, left, h, w = random_resized_crop_box(img.width, img.height, scale, (3 / 4, 4 / 3), g)
    img = TF.resized_crop(img, top, left, h, w, [size, size], interpolation=InterpolationMode.BICUBIC)
    if hflip and bool(torch.rand(1, generator=g) < 0.5):
        img = TF.hflip(img)
    return to_tensor(img)


class ImageFolderDataset(Dataset):
    """Images under a folder with MAE pretraining augmentation.

    Items are normalised tensors [3, S, S], or None for a file that cannot be read (the collate
    function drops those and counts them).
    """

    def __init__(
        self,
        root: str | Path,
        img_size: int = 224,
        scale_min: float = 0.2,
        hflip: bool = True,
        augment: bool = True,
        seed: int = 0,
        cache_px: int = 0,
        repeats: int = 1,
        progress: bool = True,
    ) -> None:
        self.files = find_images(root)
        self.repeats = max(1, int(repeats))
        self.img_size = img_size
        self.scale = (scale_min, 1.0)
        self.hflip = hflip
        self.augment = augment
        self.seed = seed
        self.cache: list[np.ndarray | None] | None = None
        if cache_px > 0:
            self.cache = [
                self._decode_resized(p, cache_px)
                for p in tqdm(self.files, desc="decoding images", disable=not progress)
            ]

    def __len__(self) -> int:
        """Samples per epoch: every file ``repeats`` times."""
        return len(self.files) * self.repeats

    @staticmethod
    def _open(path: Path) -> Image.Image:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)

    def _decode_resized(self, path: Path, short_side: int) -> np.ndarray | None:
        try:
            img = self._open(path)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            log.warning("skipping unreadable image %s: %s", path, exc)
            return None
        scale = short_side / min(img.size)
        if scale < 1:
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                             Image.Resampling.BICUBIC)
        return np.asarray(img)

    def load(self, index: int) -> Image.Image | None:
        if self.cache is not None:
            arr = self.cache[index]
            return None if arr is None else Image.fromarray(arr)
        try:
            return self._open(self.files[index])
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            log.warning("skipping unreadable image %s: %s", self.files[index], exc)
            return None

    def transform(self, img: Image.Image, epoch: int, index: int) -> torch.Tensor:
        g = _sample_generator(self.seed, epoch, index) if self.augment else None
        return crop_to_tensor(img, self.img_size, g, self.scale, self.hflip)

    def __getitem__(self, key: int) -> torch.Tensor | None:
        epoch, index = divmod(int(key), len(self))  # see the module docstring
        img = self.load(index % len(self.files))
        return None if img is None else self.transform(img, epoch, index)


@dataclass
class Batch:
    images: torch.Tensor  # [B, 3, S, S]
    skipped: int  # unreadable files dropped from this batch

    def pin_memory(self) -> "Batch":  # called by DataLoader(pin_memory=True)
        return Batch(self.images.pin_memory(), self.skipped)


def collate_skip_broken(items: list[torch.Tensor | None]) -> Batch:
    good = [x for x in items if x is not None]
    if not good:
        return Batch(torch.empty(0), len(items))
    return Batch(torch.stack(good), len(items) - len(good))


class ResumableDistributedSampler(DistributedSampler):
    """DistributedSampler that can start part-way into an epoch (exact resume).

    Each epoch is a seeded permutation; rank r takes positions r, r + W, ... as DistributedSampler
    does, so a global batch of W*b samples is the same set for any world size W.
    """

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=True)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` samples of this rank's share of the current epoch."""
        self.start = start

    def __iter__(self):
        offset = self.epoch * len(self.dataset)  # the dataset decodes (epoch, index) from keys
        indices = list(super().__iter__())
        return iter(offset + i for i in indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
