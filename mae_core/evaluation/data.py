"""Labelled ImageFolder data (``root/<class>/<image>``) and the official evaluation transforms.

Three transforms, each the one the official code uses (facebookresearch/mae):

- ``eval_transform``: ``util/datasets.build_transform(is_train=False)``: resize the short side to
  ``size / crop_pct`` (bicubic) then centre-crop ``size``; ``crop_pct`` is 224/256 = 0.875 up to
  224 px and 1.0 above (so 224 → resize 256, crop 224; 32 → resize 36, crop 32).
- ``finetune_train_transform``: ``build_transform(is_train=True)``, i.e. timm's
  ``create_transform`` with RandomResizedCrop(0.08-1, bicubic) + flip, RandAugment
  ``rand-m9-mstd0.5-inc1`` and random erasing (prob 0.25, mode ``pixel``, one region).
- ``linprobe_train_transform``: ``main_linprobe.py``: RandomResizedCrop (its one-draw variant
  from ``util/crop.py``, bicubic) + horizontal flip.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
import torchvision.transforms as T
from PIL import Image
from torchvision.transforms import InterpolationMode

from ..errors import TrainingError
from ..imaging import IMAGENET_MEAN, IMAGENET_STD, to_rgb, to_tensor
from ..train.data import IMAGE_SUFFIXES

Transform = Callable[[Image.Image], torch.Tensor]

FINETUNE_AUTO_AUGMENT = "rand-m9-mstd0.5-inc1"  # main_finetune.py --aa
EVAL_CROP_PCT = 224 / 256


def eval_crop_pct(size: int) -> float:
    """The official crop ratio: 0.875 for inputs up to 224 px, 1.0 above."""
    return EVAL_CROP_PCT if size <= 224 else 1.0


def eval_transform(size: int) -> Transform:
    """Resize the short side to ``int(size / crop_pct)`` (bicubic), centre-crop ``size``."""
    return T.Compose([
        T.Resize(int(size / eval_crop_pct(size)), interpolation=InterpolationMode.BICUBIC),
        T.CenterCrop(size),
        to_tensor,
    ])


def finetune_train_transform(size: int, auto_augment: str | None = FINETUNE_AUTO_AUGMENT,
                             reprob: float = 0.25, remode: str = "pixel",
                             recount: int = 1) -> Transform:
    """timm's ``create_transform`` training recipe, with the official fine-tuning arguments."""
    from timm.data import create_transform

    return create_transform(
        # None as the official --color_jitter default: no jitter even with RandAugment off
        input_size=size, is_training=True, color_jitter=None,  # type: ignore[arg-type]
        auto_augment=auto_augment or None, interpolation="bicubic",
        re_prob=reprob, re_mode=remode, re_count=recount,
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
    )


class OneDrawResizedCrop(T.RandomResizedCrop):
    """RandomResizedCrop drawn once, sides clamped to the image (``util/crop.py``, after BYOL's
    TF code); torchvision's version retries up to 10 times and falls back to a centre crop."""

    @staticmethod
    def get_params(img, scale, ratio):  # type: ignore[override]
        width, height = img.size
        target_area = width * height * float(torch.empty(1).uniform_(scale[0], scale[1]))
        aspect = math.exp(float(torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1]))))
        w = min(int(round(math.sqrt(target_area * aspect))), width)
        h = min(int(round(math.sqrt(target_area / aspect))), height)
        top = int(torch.randint(0, height - h + 1, (1,)))
        left = int(torch.randint(0, width - w + 1, (1,)))
        return top, left, h, w


def linprobe_train_transform(size: int) -> Transform:
    """``main_linprobe.py``'s weak augmentation: one-draw RandomResizedCrop (bicubic) + flip."""
    return T.Compose([
        OneDrawResizedCrop(size, interpolation=InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(),
        to_tensor,
    ])


class LabelledImageFolder(torch.utils.data.Dataset):
    """``root/<class>/**/<image>``; classes are the sorted sub-folder names.

    Each item is ``(transform(image), label)``. Unreadable images raise a TrainingError naming
    the file.
    """

    def __init__(self, root: str | Path, transform: Transform,
                 classes: list[str] | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise TrainingError(f"labelled data folder {root} does not exist")
        self.classes = classes or sorted(d.name for d in root.iterdir() if d.is_dir())
        if len(self.classes) < 2:
            raise TrainingError(f"{root} needs at least two class sub-folders (ImageFolder layout)")
        self.samples = [
            (p, i) for i, name in enumerate(self.classes) if (root / name).is_dir()
            for p in sorted((root / name).rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not self.samples:
            raise TrainingError(f"no images under {root}")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                img.load()
                rgb = to_rgb(img)
        except (OSError, ValueError) as exc:
            raise TrainingError(f"cannot read {path}: {exc}") from None
        return self.transform(rgb), label


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """``top1`` in percent, and ``top5`` only when there are more than 5 classes (with 5 or
    fewer it is 100% by construction and says nothing)."""
    ks = (1, 5) if logits.shape[1] > 5 else (1,)
    top = logits.topk(max(ks), dim=1).indices
    return {f"top{k}": 100.0 * (top[:, :k] == labels[:, None]).any(dim=1).float().mean().item()
            for k in ks}


def labelled_classes(root: str | Path) -> dict[str, int] | None:
    """class → image count for a labelled folder (``root/<class>/...``, or ``root/train/<class>``
    when it has ``train/`` and ``val/``), or None when it has fewer than two classes with images."""
    root = Path(root)
    if (root / "train").is_dir() and (root / "val").is_dir():
        root = root / "train"
    try:
        children = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError:
        return None
    counts = {d.name: sum(1 for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) for d in children}
    counts = {k: v for k, v in counts.items() if v}
    return counts if len(counts) >= 2 else None


def holdout_split(root: str | Path, dest: str | Path, val_every: int = 5) -> tuple[Path, Path]:
    """(train folder, val folder) of a labelled dataset. A dataset with ``train/`` and ``val/``
    is used as it is; otherwise every ``val_every``-th image of each class (file-name order)
    is held out, materialised as symlinks under ``dest/train`` and ``dest/val`` (no copies)."""
    root, dest = Path(root), Path(dest)
    if (root / "train").is_dir() and (root / "val").is_dir():
        return root / "train", root / "val"
    for name in labelled_classes(root) or {}:
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for i, path in enumerate(files):
            split = "val" if i % val_every == val_every - 1 else "train"
            link = dest / split / name / f"{i:06d}{path.suffix.lower()}"
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(path.resolve())
    return dest / "train", dest / "val"
