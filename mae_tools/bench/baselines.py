"""Non-learned inpainting baselines for masked-patch reconstruction, and their metric.

A reconstruction number means little alone: "PSNR 19 dB on masked patches" is only good or bad
next to what a trivial method gets on the *same* masks. Two baselines bracket that:

- ``mean_fill``: every removed patch becomes the mean colour of the visible pixels (a model that
  learned nothing but the image's average colour);
- ``telea_inpaint``: OpenCV's fast-marching inpainting (Telea 2004), which propagates the colours
  of the visible border inward: strong on smooth regions, weak on texture and large holes.

Images are RGB uint8 [H, W, 3]; masks are patch grids [h, w] with 1 = removed, H = h * p and
W = w * p for patch size p. Everything here is pure numpy/OpenCV.
"""

from __future__ import annotations

import numpy as np

from mae_core.errors import InvalidParameterError
from mae_core.metrics import masked_patch_metrics as _masked_patch_metrics

__all__ = ["expand_mask", "mean_fill", "telea_inpaint", "masked_patch_metrics"]


def _check(image: np.ndarray, mask: np.ndarray, patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidParameterError(f"image must be [H, W, 3], got shape {image.shape}")
    if image.dtype != np.uint8:
        raise InvalidParameterError(f"image must be uint8, got {image.dtype}")
    if patch_size <= 0:
        raise InvalidParameterError(f"patch_size must be positive, got {patch_size}")
    if mask.ndim != 2:
        raise InvalidParameterError(f"mask must be a [h, w] patch grid, got shape {mask.shape}")
    h, w = mask.shape
    if image.shape[:2] != (h * patch_size, w * patch_size):
        raise InvalidParameterError(
            f"image {image.shape[1]}x{image.shape[0]} does not match a {w}x{h} patch grid of "
            f"{patch_size}px patches ({w * patch_size}x{h * patch_size})"
        )
    return image, mask.astype(bool)


def expand_mask(mask: np.ndarray, patch_size: int) -> np.ndarray:
    """Patch grid [h, w] → pixel mask [h*p, w*p] (bool, True = removed)."""
    grid = np.asarray(mask).astype(bool)
    return np.repeat(np.repeat(grid, patch_size, axis=0), patch_size, axis=1)


def mean_fill(image: np.ndarray, mask: np.ndarray, patch_size: int) -> np.ndarray:
    """Fill every removed patch with the mean colour of all visible pixels.

    Args:
        image: RGB uint8 [H, W, 3].
        mask: patch grid [h, w], 1 = removed.
        patch_size: patch side p in pixels.

    Returns:
        A new uint8 [H, W, 3] image; visible pixels are unchanged. If every patch is removed
        there is nothing to average, so the image is filled with mid-grey (128).
    """
    image, grid = _check(image, mask, patch_size)
    removed = expand_mask(grid, patch_size)
    out = image.copy()
    if not removed.any():
        return out
    visible = image[~removed]
    colour = np.rint(visible.mean(axis=0)) if visible.size else np.full(3, 128.0)
    out[removed] = np.clip(colour, 0, 255).astype(np.uint8)
    return out


def telea_inpaint(
    image: np.ndarray, mask: np.ndarray, patch_size: int, radius: float = 5.0
) -> np.ndarray:
    """Inpaint the removed patches with OpenCV's Telea fast-marching method.

    Args:
        image: RGB uint8 [H, W, 3].
        mask: patch grid [h, w], 1 = removed.
        patch_size: patch side p in pixels.
        radius: neighbourhood radius in pixels considered around each inpainted pixel.

    Returns:
        A new uint8 [H, W, 3] image; visible pixels are unchanged. With every patch removed,
        falls back to ``mean_fill`` (Telea has no border to propagate from).
    """
    import cv2  # local: importing mae_core must not need OpenCV

    image, grid = _check(image, mask, patch_size)
    removed = expand_mask(grid, patch_size)
    if not removed.any():
        return image.copy()
    if removed.all():
        return mean_fill(image, grid, patch_size)
    pixel_mask = removed.astype(np.uint8) * 255
    # cv2.inpaint is channel-order agnostic; it treats the 3 channels independently.
    out = cv2.inpaint(np.ascontiguousarray(image), pixel_mask, float(radius), cv2.INPAINT_TELEA)
    out[~removed] = image[~removed]
    return out


def masked_patch_metrics(
    pred_uint8: np.ndarray, target_uint8: np.ndarray, mask: np.ndarray, patch_size: int
) -> dict[str, float]:
    """MSE and PSNR (peak 255) over the removed patches, in pixel space on [0, 255].

    Thin wrapper over ``mae_core.metrics.masked_patch_metrics`` (the one implementation), with
    shape checks. Keys: ``masked_mse``, ``masked_psnr`` (``inf`` for a perfect match) and
    ``visible_mse``. With no removed patch, ``masked_mse`` is 0 and ``masked_psnr`` is ``inf``.
    """
    pred, grid = _check(pred_uint8, mask, patch_size)
    target, _ = _check(target_uint8, mask, patch_size)
    return _masked_patch_metrics(pred, target, grid.astype(np.uint8), patch_size)
