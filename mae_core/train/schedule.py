"""Learning rate: linear warmup then half-cycle cosine, set every iteration (official recipe)."""

from __future__ import annotations

import math


def base_lr(blr: float, effective_batch: int, lr: float | None = None) -> float:
    """``lr = blr * effective_batch / 256`` (paper's linear scaling rule) unless lr is given."""
    return lr if lr is not None else blr * effective_batch / 256


def lr_at(epoch: float, lr: float, min_lr: float, warmup_epochs: float, epochs: float) -> float:
    """Learning rate at a fractional epoch."""
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    span = max(epochs - warmup_epochs, 1e-12)
    progress = min(1.0, (epoch - warmup_epochs) / span)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
