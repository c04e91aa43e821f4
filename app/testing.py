"""Helpers for tests and benchmarks: random-init checkpoints and synthetic photos.

Nothing here downloads anything; checkpoints are randomly initialised and only good for
exercising the service (their reconstructions are noise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mae_core import create_model, save_model

TINY_64 = dict(img_size=64, embed_dim=64, depth=2, num_heads=4, decoder_embed_dim=32,
               decoder_depth=1, decoder_num_heads=4)


def write_checkpoint(folder: str | Path, name: str, *, size: int = 64, norm_pix_loss: bool = False,
                     decoder: bool = True, seed: int = 0, card: dict[str, Any] | None = None) -> Path:
    """Save a randomly initialised ``mae_vit_tiny_patch16`` as ``folder/name.safetensors``.

    ``size=64`` gives a very small model (4x4 grid); ``size=224`` the full tiny preset (14x14).
    """
    torch.manual_seed(seed)
    overrides: dict[str, Any] = dict(TINY_64) if size == 64 else {"img_size": size}
    model = create_model("mae_vit_tiny_patch16", norm_pix_loss=norm_pix_loss, **overrides).eval()
    if not decoder:
        model._has_decoder = False
    card = card or {"data": {"description": "none (random initialisation, for tests)"},
                    "training": {"note": "random init"}}
    return save_model(model, Path(folder) / f"{name}.safetensors", card)


def synthetic_photo(width: int = 96, height: int = 80, seed: int = 0) -> Image.Image:
    """A smooth RGB test picture: gradients, a disc and a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    r = xx / max(1, width - 1) * 255
    g = yy / max(1, height - 1) * 255
    disc = (xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (min(width, height) / 4) ** 2
    b = np.where(disc, 220, 40)
    arr = np.stack([r, g, b], -1) + rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()
