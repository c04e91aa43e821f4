"""``attention=true`` on POST /reconstruct: the last encoder block's cls-to-patch attention.

Returned as arrays, not images: ``attention.heads`` is [H][rows][cols] and ``attention.mean``
[rows][cols], on the patch grid of ``mask``, each map scaled so its largest visible value is 1
(``attention.scale`` keeps the raw maxima); removed patches are null (the encoder never saw
them). The page draws them as a translucent overlay; clients can colour them as they like.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mae_core.attention import reconstruction_attention


def _scaled(grid: torch.Tensor) -> tuple[list[list[float | None]], float]:
    peak = float(torch.nan_to_num(grid, nan=0.0).max()) or 1.0
    rows = [[None if math.isnan(v) else round(v / peak, 4) for v in row] for row in grid.tolist()]
    return rows, peak


def attention_payload(result: Any, picture: Any, resize: str) -> dict[str, Any]:
    reconstructor = result.reconstructor
    prepared = reconstructor.prepare_input(picture, resize)
    maps = reconstruction_attention(reconstructor, prepared, result.reconstruction.mask)
    heads = [_scaled(h) for h in maps.heads[0]]
    mean, mean_peak = _scaled(maps.mean[0])
    return {"block": len(reconstructor.model.blocks) - 1, "num_heads": len(heads),
            "heads": [h for h, _ in heads], "mean": mean,
            "scale": {"heads": [round(p, 6) for _, p in heads], "mean": round(mean_peak, 6)}}
