"""Fixed 2-D sin-cos position embeddings (MAE paper, official construction).

The official code builds the grid with ``np.meshgrid(grid_w, grid_h)``, so the first half of the
channels encodes the column (w) index and the second half the row (h) index; each half is
``[sin, cos]`` with frequencies ``1 / 10000 ** (i / (d / 2))``. We reproduce that exactly, for any
grid size, so non-square inputs get a table too.
"""

from __future__ import annotations

import torch


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """1-D sin-cos table: ``[len(positions), dim]`` laid out ``[sin | cos]``."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding dim must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # [D/2]
    out = positions.reshape(-1).to(torch.float64)[:, None] * omega[None, :]  # [M, D/2]
    return torch.cat([out.sin(), out.cos()], dim=1)  # [M, D]


def sincos_2d(dim: int, grid_h: int, grid_w: int, cls_token: bool = True) -> torch.Tensor:
    """2-D sin-cos table ``[(1 +) grid_h * grid_w, dim]`` in row-major patch order.

    Args:
        dim: embedding width; must be divisible by 4.
        grid_h: number of patch rows.
        grid_w: number of patch columns.
        cls_token: prepend one all-zero row for the cls token (as the official model does).
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding dim must be divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(
        torch.arange(grid_h, dtype=torch.float64),
        torch.arange(grid_w, dtype=torch.float64),
        indexing="ij",
    )
    emb_w = sincos_1d(dim // 2, cols)  # first half: column index
    emb_h = sincos_1d(dim // 2, rows)  # second half: row index
    table = torch.cat([emb_w, emb_h], dim=1)  # [h*w, D]
    if cls_token:
        table = torch.cat([torch.zeros(1, dim, dtype=table.dtype), table], dim=0)
    return table.float()
