"""Patchify / unpatchify in the official layout: each patch vector is ordered (p, q, c)."""

from __future__ import annotations

import torch


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Images ``[N, C, H, W]`` → patch vectors ``[N, L, p*p*C]`` (row-major patches)."""
    n, c, h, w = imgs.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch_size}")
    p = patch_size
    # Channels last first: the second copy then moves runs of p*c values (faster than one
    # permute whose innermost stride is the channel).
    pixels = imgs.permute(0, 2, 3, 1).contiguous()  # n H W c
    grid = pixels.view(n, h // p, p, w // p, p * c)  # n h p w (q c)
    return grid.permute(0, 1, 3, 2, 4).reshape(n, (h // p) * (w // p), p * p * c)


def embedding_patches(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Images ``[N, C, H, W]`` → ``[N, L, C*p*p]``, each patch in the (c, p, q) order of a
    patch-embedding convolution's weight, so ``conv(imgs)`` equals a linear layer on these."""
    n, c, h, w = imgs.shape
    p = patch_size
    grid = imgs.reshape(n, c, h // p, p, w // p, p)
    return grid.permute(0, 2, 4, 1, 3, 5).reshape(n, (h // p) * (w // p), c * p * p)


def unpatchify(x: torch.Tensor, patch_size: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """Patch vectors ``[N, L, p*p*C]`` → images ``[N, C, h*p, w*p]`` for a grid ``(h, w)``."""
    gh, gw = grid_size
    if x.shape[1] != gh * gw:
        raise ValueError(f"{x.shape[1]} patches do not fill a {gh}x{gw} grid")
    n, _, dim = x.shape
    p = patch_size
    c = dim // (p * p)
    grid = x.reshape(n, gh, gw, p, p, c)  # n h w p q c
    return grid.permute(0, 5, 1, 3, 2, 4).reshape(n, c, gh * p, gw * p)
