"""Patchify / unpatchify in the official layout: each patch vector is ordered (p, q, c)."""

from __future__ import annotations

import torch
from einops import rearrange


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Images ``[N, C, H, W]`` → patch vectors ``[N, L, p*p*C]`` (row-major patches)."""
    n, c, h, w = imgs.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch_size}")
    return rearrange(imgs, "n c (h p) (w q) -> n (h w) (p q c)", p=patch_size, q=patch_size)


def unpatchify(x: torch.Tensor, patch_size: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """Patch vectors ``[N, L, p*p*C]`` → images ``[N, C, h*p, w*p]`` for a grid ``(h, w)``."""
    gh, gw = grid_size
    if x.shape[1] != gh * gw:
        raise ValueError(f"{x.shape[1]} patches do not fill a {gh}x{gw} grid")
    return rearrange(
        x, "n (h w) (p q c) -> n c (h p) (w q)", h=gh, w=gw, p=patch_size, q=patch_size
    )
