"""What a pretraining run will cost, estimated before it starts, and the operator's limits on it.

A server refuses a job whose parameters, tokens per image, optimizer steps or training FLOPs pass
``CostLimits``; the server's ``Settings`` (``MAE_JOB_MAX_PARAMS``, ``MAE_JOB_MAX_TOKENS``,
``MAE_JOB_MAX_STEPS``, ``MAE_JOB_MAX_FLOPS`` or ``mae serve --job-max-*``) are where an operator
sets them. The defaults admit the paper's ViT-B/L/H at 224 px with 1600-epoch
schedules on ImageNet-1k (1.28 M images, batch 4096) and nothing far beyond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import ModelConfig
from ..masking import num_kept
from ..presets import get_preset
from .config import TrainConfig


def _block_params(width: int, mlp_ratio: float) -> int:
    hidden = int(width * mlp_ratio)
    # two LayerNorms, qkv + proj, fc1 + fc2 (with biases)
    return 4 * width + (3 * width * width + 3 * width) + (width * width + width) \
        + (width * hidden + hidden) + (hidden * width + width)


def model_params(cfg: ModelConfig) -> int:
    """Trainable parameters of the MAE (encoder + decoder; positional tables are fixed buffers)."""
    patch = cfg.patch_size ** 2 * cfg.in_chans
    d, dd = cfg.embed_dim, cfg.decoder_embed_dim
    encoder = patch * d + d + d + cfg.depth * _block_params(d, cfg.mlp_ratio) + 2 * d
    decoder = (d * dd + dd) + dd + cfg.decoder_depth * _block_params(dd, cfg.mlp_ratio) + 2 * dd \
        + (dd * patch + patch)
    return encoder + decoder


def _blocks_flops(tokens: int, width: int, depth: int, mlp_ratio: float) -> float:
    """Forward FLOPs (2 per multiply-add) of ``depth`` blocks over ``tokens`` tokens."""
    linear = tokens * width * width * (4 + 2 * mlp_ratio)
    attention = 2 * tokens * tokens * width
    return 2.0 * depth * (linear + attention)


def image_flops(cfg: ModelConfig, mask_ratio: float) -> float:
    """Training FLOPs per image (forward + backward ~ 3x forward): the encoder sees the visible
    patches only, the decoder all of them (paper section 3)."""
    length = cfg.num_patches
    patch = cfg.patch_size ** 2 * cfg.in_chans
    visible = num_kept(length, mask_ratio) + 1
    forward = 2.0 * length * patch * cfg.embed_dim \
        + _blocks_flops(visible, cfg.embed_dim, cfg.depth, cfg.mlp_ratio) \
        + 2.0 * visible * cfg.embed_dim * cfg.decoder_embed_dim \
        + _blocks_flops(length + 1, cfg.decoder_embed_dim, cfg.decoder_depth, cfg.mlp_ratio) \
        + 2.0 * length * cfg.decoder_embed_dim * patch
    return 3.0 * forward


@dataclass(frozen=True)
class JobCost:
    params: int
    tokens: int  # patches per image
    steps: int | None  # optimizer steps of the whole schedule (None: dataset size unknown)
    flops: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"params": self.params, "tokens": self.tokens, "steps": self.steps, "flops": self.flops}


def effective_batch(config: TrainConfig, world_size: int = 1) -> int:
    """Images per optimizer step, as the trainer derives it."""
    accum = config.accum_iter
    if config.effective_batch:
        accum = max(1, math.ceil(config.effective_batch / (config.batch_size * world_size)))
    return config.batch_size * accum * world_size


def estimate(config: TrainConfig, num_images: int | None) -> JobCost:
    """The cost of running ``config`` on ``num_images`` images (None: unknown)."""
    cfg = get_preset(config.model, img_size=config.data.img_size, **config.model_overrides)
    steps = flops = None
    if num_images is not None:
        batch = effective_batch(config)
        steps = (num_images * config.data.repeats // batch) * config.epochs
        flops = image_flops(cfg, config.mask_ratio) * steps * batch
    return JobCost(model_params(cfg), cfg.num_patches, steps, flops)


@dataclass(frozen=True)
class CostLimits:
    """The most a job may ask for. ViT-H/14 at 224 px is 0.66 G parameters and 256 tokens; its
    1600-epoch ImageNet schedule is 0.5 M steps and 6.0e20 FLOPs."""

    max_params: int = 1_000_000_000
    max_tokens: int = 1024  # e.g. 512 px at patch 16
    max_steps: int = 1_000_000
    max_flops: float = 1.5e21

    # the setting naming each limit in messages (app.Settings reads it, e.g. job_max_steps)
    ENV = {"max_params": "MAE_JOB_MAX_PARAMS", "max_tokens": "MAE_JOB_MAX_TOKENS",
           "max_steps": "MAE_JOB_MAX_STEPS", "max_flops": "MAE_JOB_MAX_FLOPS"}

    def problems(self, cost: JobCost) -> list[str]:
        """One message per limit ``cost`` passes, naming the limit, its value and the job's."""
        found = []
        checks = (("max_params", cost.params, "parameters", "use a smaller model or fewer blocks"),
                  ("max_tokens", cost.tokens, "tokens (patches) per image",
                   "use a smaller img_size or a larger patch_size"),
                  ("max_steps", cost.steps, "optimizer steps", "use fewer epochs or a larger batch"),
                  ("max_flops", cost.flops, "training FLOPs",
                   "use a smaller model, fewer epochs or less data"))
        for name, value, what, advice in checks:
            limit = getattr(self, name)
            if value is not None and value > limit:
                found.append(f"this job needs {_fmt(value)} {what}, over the server's limit "
                             f"{self.ENV[name]}={_fmt(limit)}; {advice}")
        return found


def _fmt(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.3g}"
