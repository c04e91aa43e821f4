"""A checkpoint's masked-patch PSNR on a folder of photos (the app's bundled samples), measured
here and recorded in its card, so the Models page can compare checkpoints on the same pictures."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from PIL import Image

from mae_core import Reconstructor
from mae_core.checkpoint import card_path_for
from mae_core.io_utils import write_json_atomic
from mae_core.train.data import IMAGE_SUFFIXES

SETTINGS = {"mask_ratio": 0.75, "strategy": "random", "seeds": [0, 1]}
CARD_SECTION = "samples_quality"


def measure_on_samples(weights: Path, samples_dir: Path, device: str | None = None) -> dict[str, Any]:
    """Mean masked-patch PSNR (dB) over every photo in ``samples_dir``, 75% random masks, two
    seeds each; norm-pix models are shown with each patch's true statistics (as the page does)."""
    images = sorted(p for p in Path(samples_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"no photos in {samples_dir}")
    reconstructor = Reconstructor.from_checkpoint(weights, device=device)
    values = []
    for path in images:
        with Image.open(path) as img:
            img.load()
            for seed in SETTINGS["seeds"]:
                rec = reconstructor.reconstruct(img, mask_ratio=SETTINGS["mask_ratio"],
                                                strategy=SETTINGS["strategy"], seed=seed)
                values.append(rec.metrics["masked_psnr"])
    return {"masked_psnr_db": round(statistics.fmean(values), 3), "images": len(images),
            **SETTINGS, "uses_target_stats": reconstructor.model.config.norm_pix_loss}


def record_in_card(weights: Path, quality: dict[str, Any]) -> bool:
    """Add the measurement to the checkpoint's JSON card (written atomically). Files without a
    full card (a bare .pth) are left alone: a partial card would hide their inferred config."""
    path = card_path_for(weights)
    card = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if not card.get("model_config"):
        return False
    card[CARD_SECTION] = quality
    write_json_atomic(path, card)
    return True
