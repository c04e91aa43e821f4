"""Image input/output: any PIL image → normalised model input, and back to uint8 pixels.

Resize policies:
- ``"crop"`` (default): resize the shorter side to the model's size, centre-crop the rest —
  what the official demo does for its 224x224 model.
- ``"keep-aspect"``: keep the aspect ratio by choosing a patch grid with about the model's patch
  count and the image's shape (e.g. 12x16 for a 3:4 photo); nothing is cropped. Position
  embeddings are computed for that grid.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import InvalidParameterError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_POLICIES = ("crop", "keep-aspect")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode → RGB: EXIF orientation applied, transparency composited on white,
    16-bit scaled (not clipped), CMYK converted."""
    img = ImageOps.exif_transpose(img)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def grid_for_aspect(width: int, height: int, num_patches: int) -> tuple[int, int]:
    """Patch grid (rows, cols) with about ``num_patches`` cells and the image's aspect ratio."""
    aspect = height / width
    rows = max(1, round(math.sqrt(num_patches * aspect)))
    cols = max(1, round(num_patches / rows))
    return rows, cols


def fit_image(
    img: Image.Image, size: tuple[int, int], patch_size: int, policy: str = "crop"
) -> Image.Image:
    """Resize ``img`` (RGB) for the model by ``policy``; result sides are multiples of the patch."""
    if policy not in RESIZE_POLICIES:
        raise InvalidParameterError(
            f"unknown resize policy {policy!r}; choose one of {', '.join(RESIZE_POLICIES)}"
        )
    height, width = size
    if policy == "keep-aspect":
        rows, cols = grid_for_aspect(img.width, img.height, (height // patch_size) * (width // patch_size))
        return img.resize((cols * patch_size, rows * patch_size), Image.Resampling.BICUBIC)
    scale = max(width / img.width, height / img.height)
    resized = img.resize(
        (max(width, round(img.width * scale)), max(height, round(img.height * scale))),
        Image.Resampling.BICUBIC,
    )
    left = (resized.width - width) // 2
    top = (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image → normalised float tensor [3, H, W]."""
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (arr - mean) / std


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Normalised tensor [3, H, W] or [N, 3, H, W] → uint8 [H, W, 3] / [N, H, W, 3] (clipped)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    pixels = ((x.float() * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
    return pixels.movedim(-3, -1).cpu().numpy()
