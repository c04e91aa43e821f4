"""Image input/output: any PIL image → normalised model input, and back to uint8 pixels.

Resize policies:
- ``"crop"`` (default): resize the shorter side to the model's size, centre-crop the rest —
  what the official demo does for its 224x224 model.
- ``"keep-aspect"``: keep the aspect ratio by choosing a patch grid with about the model's patch
  count and the image's shape (e.g. 12x16 for a 3:4 photo); nothing is cropped unless the image
  is more elongated than 1:n (n = patch count). Position embeddings are computed for that grid.
"""

from __future__ import annotations

import functools
import math
import struct

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import InvalidParameterError, UnsupportedImageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_POLICIES = ("crop", "keep-aspect")
# crop resizes the whole image then crops, unless that strip would exceed this many model inputs
MAX_CROP_OVERSCAN = 16
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode → 8-bit RGB, so every decodable upload looks as its author meant it.

    - EXIF orientation 2-8 is applied (a missing, unknown or malformed tag counts as 1).
    - Transparency (RGBA, LA, PA, a palette or colour-key ``transparency``) is composited on white.
    - 16-bit grey (``I;16*``) is scaled 0..65535 → 0..255, not clipped; 32-bit integer ``I`` is
      read as 16-bit when any value exceeds 255; float ``F`` as 0..1 when its maximum is at most
      1, else as 0..255. (Pillow already reduces 16-bit RGB(A) PNGs to 8 bits by scaling.)
    - CMYK (Adobe-inverted JPEGs are un-inverted by Pillow's decoder), YCbCr, 1-bit and palette
      images are converted by Pillow.

    Raises:
        UnsupportedImageError: a mode Pillow cannot turn into RGB (e.g. LAB without a profile).
    """
    img = apply_exif_orientation(img)
    if img.mode in ("L", "RGB", "P") and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in SIXTEEN_BIT_MODES or img.mode in ("I", "F"):
        img = _to_8bit_grey(img)
    if img.mode in ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode == "RGB":
        return img
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise UnsupportedImageError(
            f"images in mode {img.mode} cannot be converted to RGB ({exc}); save the image as "
            "8-bit RGB or greyscale"
        ) from None


def apply_exif_orientation(img: Image.Image, *, in_place: bool = False) -> Image.Image:
    """``img`` turned upright by its EXIF orientation tag (2-8), with the tag removed.

    A missing, unknown or malformed tag leaves the pixels as they are. Decoding errors (a
    truncated file) propagate. ``in_place=True`` saves a full-size copy of large images.
    """
    img.load()
    try:
        if in_place:
            ImageOps.exif_transpose(img, in_place=True)
            return img
        return ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError, IndexError, struct.error):
        return img  # a malformed EXIF block must not make the picture unreadable


def _to_8bit_grey(img: Image.Image) -> Image.Image:
    arr = np.asarray(img)
    if img.mode == "F":
        arr = arr.astype(np.float32)
        finite = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
        peak = 1.0 if finite.size and float(finite.max()) <= 1.0 else 255.0
        out = np.clip(finite * (255.0 / peak) + 0.5, 0, 255)
    else:
        values = arr.astype(np.int64) if img.mode == "I" else arr.astype(np.uint32)
        if img.mode == "I" and (values.size == 0 or values.max() <= 255):
            out = np.clip(values, 0, 255)
        else:
            out = (np.clip(values, 0, 65535) * 255 + 32767) // 65535
    return Image.fromarray(out.astype(np.uint8), "L")


def grid_for_aspect(width: int, height: int, num_patches: int) -> tuple[int, int]:
    """Patch grid (rows, cols) with about ``num_patches`` cells and the image's aspect ratio.

    Each side stays between 1 and ``num_patches`` patches, so an extreme aspect ratio can never
    ask the model for more than about ``num_patches`` tokens.
    """
    aspect = height / width
    rows = min(num_patches, max(1, round(math.sqrt(num_patches * aspect))))
    cols = min(num_patches, max(1, round(num_patches / rows)))
    return rows, cols


def fit_image(
    img: Image.Image, size: tuple[int, int], patch_size: int, policy: str = "crop"
) -> Image.Image:
    """Resize ``img`` (RGB) for the model by ``policy``; result sides are multiples of the patch.

    Any size works, including images smaller than one patch (they are scaled up). ``crop`` takes
    the centre region with the model's aspect. ``keep-aspect`` follows the image's aspect ratio
    up to 1:n or n:1 (n = the model's patch count); a more elongated image is centre-cropped to
    that ratio first. Memory stays proportional to the input plus the output, whatever the
    aspect ratio.
    """
    if policy not in RESIZE_POLICIES:
        raise InvalidParameterError(
            f"unknown resize policy {policy!r}; choose one of {', '.join(RESIZE_POLICIES)}"
        )
    height, width = size
    if policy == "keep-aspect":
        num_patches = (height // patch_size) * (width // patch_size)
        box = _centre_box(img.width, img.height, min_aspect=1 / num_patches, max_aspect=num_patches)
        rows, cols = grid_for_aspect(box[2] - box[0], box[3] - box[1], num_patches)
        if img.size == (cols * patch_size, rows * patch_size):
            return img  # already fitted (e.g. by the server, off the inference thread)
        return img.resize((cols * patch_size, rows * patch_size), Image.Resampling.BICUBIC,
                          box=None if box == (0, 0, img.width, img.height) else box)
    if img.size == (width, height):
        return img  # already fitted
    scale = max(width / img.width, height / img.height)
    full = (max(width, round(img.width * scale)), max(height, round(img.height * scale)))
    left = (full[0] - width) // 2
    top = (full[1] - height) // 2
    if full[0] * full[1] <= MAX_CROP_OVERSCAN * width * height:
        resized = img.resize(full, Image.Resampling.BICUBIC)
        return resized.crop((left, top, left + width, top + height))
    # A very elongated image: resizing all of it first would allocate an enormous strip, so
    # resample only the centre region (same result up to rounding).
    sx, sy = img.width / full[0], img.height / full[1]
    return img.resize((width, height), Image.Resampling.BICUBIC,
                      box=(left * sx, top * sy, (left + width) * sx, (top + height) * sy))


def _centre_box(width: int, height: int, min_aspect: float, max_aspect: float) -> tuple[int, int, int, int]:
    """The centred (left, top, right, bottom) region whose height/width lies in the given range."""
    if height > width * max_aspect:
        keep = max(1, round(width * max_aspect))
        top = (height - keep) // 2
        return 0, top, width, top + keep
    if height < width * min_aspect:
        keep = max(1, round(height / min_aspect))
        left = (width - keep) // 2
        return left, 0, left + keep, height
    return 0, 0, width, height


_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)
_MEAN_NP = _MEAN.numpy()
_STD_NP = _STD.numpy()


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image → normalised float tensor [3, H, W] (contiguous).

    Computed with numpy, which never starts OpenMP threads: a server thread that ran torch's
    parallel kernels would keep its own OpenMP team alive, and with more OpenMP threads than
    cores libgomp stops spinning between kernels, making the inference thread's forward pass
    about 2x slower. Bit-identical to ``(x / 255 - mean) / std`` in torch.
    """
    pixels = np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1), dtype=np.float32)
    pixels /= np.float32(255.0)
    pixels -= _MEAN_NP
    pixels /= _STD_NP
    return torch.from_numpy(pixels)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Normalised tensor [3, H, W] or [N, 3, H, W] → uint8 [H, W, 3] / [N, H, W, 3] (clipped)."""
    mean = (_MEAN * 255.0).to(x.device)
    std = (_STD * 255.0).to(x.device)
    pixels = torch.addcmul(mean, x.float(), std).round_().clamp_(0, 255).to(torch.uint8)
    return pixels.movedim(-3, -1).cpu().numpy()


@functools.cache
def mean_colour() -> np.ndarray:
    """The uint8 RGB colour of a zero (dataset-mean) pixel, what removed patches show."""
    return to_uint8(torch.zeros(3, 1, 1))[0, 0]
