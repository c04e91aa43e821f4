"""Shared helpers for training tests: a synthetic image folder and tiny configs."""

from pathlib import Path

import numpy as np
from PIL import Image

from mae_core.train import DataConfig, OptimConfig, TrainConfig

TINY = dict(embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32, decoder_depth=1,
            decoder_num_heads=2)


def make_images(folder: Path, count: int = 32, size: int = 40, seed: int = 0) -> Path:
    """Smooth random gradients with a bright square: learnable structure, fast to load."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(count):
        base = rng.uniform(30, 220, 3)
        slope = rng.uniform(-2.5, 2.5, 3)
        img = base + slope * ((xx + yy) / 2)[..., None]
        x0, y0 = rng.integers(0, size - 12, 2)
        img[y0:y0 + 12, x0:x0 + 12] = rng.uniform(0, 255, 3)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img_{i:03d}.png")
    return folder


def tiny_config(data: Path, out: Path, **changes) -> TrainConfig:
    base = TrainConfig(
        model="mae_vit_tiny_patch16", model_overrides=dict(TINY, patch_size=8),
        data=DataConfig(path=str(data), img_size=32),
        optim=OptimConfig(lr=2e-3, warmup_epochs=1), epochs=4, batch_size=8,
        norm_pix_loss=False, device="cpu", output_dir=str(out), log_every=1,
        snapshot_every=0, ckpt_every_steps=1000, seed=0,
    )
    return base.replace(**changes)


def tiny_cli_args(data: Path, out: Path) -> list[str]:
    return ["train", "--data", str(data), "--model", "mae_vit_tiny_patch16", "--img-size", "32",
            "--batch-size", "8", "--epochs", "6", "--lr", "2e-3", "--warmup-epochs", "1",
            "--device", "cpu", "--output-dir", str(out), "--log-every", "1",
            "--snapshot-every", "0", "--no-progress", "--no-norm-pix", "--config"]


def read_losses(run_dir: Path) -> list[tuple[int, float]]:
    from mae_core.runs import RunFolder

    return [(r["step"], r["loss"]) for r in RunFolder(run_dir).read_metrics()]
