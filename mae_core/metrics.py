"""Reconstruction metrics in pixel space ([0, 255]), per patch and over masked patches."""

from __future__ import annotations

import math

import numpy as np


def patch_mse_map(pred: np.ndarray, target: np.ndarray, patch_size: int) -> np.ndarray:
    """Per-patch MSE [h, w] between two uint8 images [H, W, 3] on the [0, 255] scale."""
    diff = pred.astype(np.int32) - target.astype(np.int32)
    squared = diff * diff  # exact integers; the per-patch sums below are exact too
    height, width = squared.shape[:2]
    h, w = height // patch_size, width // patch_size
    blocks = squared[: h * patch_size, : w * patch_size].reshape(h, patch_size, w, patch_size, -1)
    return blocks.sum(axis=(1, 3, 4), dtype=np.int64) / float(patch_size * patch_size * squared.shape[-1])


def psnr(mse: float, peak: float = 255.0) -> float:
    """PSNR in dB for an MSE on a [0, peak] scale; ``inf`` for a perfect match."""
    if mse <= 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def masked_patch_metrics(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray, patch_size: int
) -> dict[str, float]:
    """MSE/PSNR over removed patches (mask 1) and MSE over visible ones, in pixel space."""
    return summarize_errors(patch_mse_map(pred, target, patch_size), mask)


def summarize_errors(errors: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The metrics of ``masked_patch_metrics`` from an existing per-patch error map."""
    removed = np.asarray(mask).astype(bool)
    masked_mse = float(errors[removed].mean()) if removed.any() else 0.0
    visible_mse = float(errors[~removed].mean()) if (~removed).any() else 0.0
    return {"masked_mse": masked_mse, "masked_psnr": psnr(masked_mse), "visible_mse": visible_mse}
