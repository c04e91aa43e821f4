"""Labelled ImageFolder data (``root/<class>/<image>``) for evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import TrainingError
from ..imaging import IMAGENET_MEAN, IMAGENET_STD, fit_image, to_rgb
from ..train.data import IMAGE_SUFFIXES, random_resized_crop_box

import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode


class LabelledImageFolder(Dataset):
    """``root/<class>/**/<image>``; classes are the sorted sub-folder names.

    ``train=True`` applies RandomResizedCrop(0.08-1) + flip (fine-tuning); otherwise resize +
    centre crop. Unreadable images raise a TrainingError naming the file.
    """

    def __init__(self, root: str | Path, img_size: int = 224, train: bool = False,
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
        self.img_size = img_size
        self.train = train
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                img.load()
                img = to_rgb(img)
        except (OSError, ValueError) as exc:
            raise TrainingError(f"cannot read {path}: {exc}") from None
        if self.train:
            g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
            top, left, h, w = random_resized_crop_box(img.width, img.height, (0.08, 1.0), (3 / 4, 4 / 3), g)
            img = TF.resized_crop(img, top, left, h, w, [self.img_size] * 2,
                                  interpolation=InterpolationMode.BICUBIC)
            if torch.rand(1, generator=g) < 0.5:
                img = TF.hflip(img)
        else:
            img = fit_image(img, (self.img_size, self.img_size), 1, "crop")
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (x - self.mean) / self.std, label


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    out = {}
    for k in ks:
        k_eff = min(k, logits.shape[1])
        hit = (logits.topk(k_eff, dim=1).indices == labels[:, None]).any(dim=1).float().mean()
        out[f"top{k}"] = 100.0 * hit.item()
    return out
