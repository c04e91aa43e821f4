"""Labelled ImageFolder data (``root/<class>/<image>``) for evaluation."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import TrainingError
from ..imaging import to_rgb
from ..train.data import IMAGE_SUFFIXES, crop_to_tensor


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
        g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)))) if self.train else None
        return crop_to_tensor(img, self.img_size, g, scale=(0.08, 1.0)), label


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    out = {}
    for k in ks:
        k_eff = min(k, logits.shape[1])
        hit = (logits.topk(k_eff, dim=1).indices == labels[:, None]).any(dim=1).float().mean()
        out[f"top{k}"] = 100.0 * hit.item()
    return out
