"""A small labelled image folder (ImageFolder layout) made on the spot: two or more classes of
noisy solid colours, which any encoder separates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"blue": (40, 40, 200), "red": (200, 40, 40), "green": (40, 190, 60)}


def make_labelled(root: Path, per_class: int, classes=("blue", "red"), seed: int = 0, size: int = 40) -> Path:
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(COLOURS[name]) + rng.normal(0, 25, (size, size, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{name}-{i:03d}.png")
    return root
