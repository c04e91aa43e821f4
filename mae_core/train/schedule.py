"""Learning rate: linear warmup then half-cycle cosine, set every iteration (official recipe)."""

from __future__ import annotations

import math
from dataclasses import dataclass


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


@dataclass(frozen=True)
class StepSchedule:
    """How optimizer steps map onto epochs and micro-batches (official ``engine_pretrain``).

    An epoch is ``micro_per_epoch`` micro-batches per process (``len(data_loader)``); every
    ``accum`` of them make one optimizer step. The lr of a step is set at its first
    micro-batch from the fractional epoch ``epoch + first_micro / micro_per_epoch``.

    When ``micro_per_epoch`` is not a multiple of ``accum``, the official loop still computes
    the last ``tail_micro`` micro-batches of an epoch, never steps on them, and clears their
    gradients with the next epoch's ``zero_grad``: they never change the weights. We skip them
    without loading them, which gives the same weights and the same schedule for less work.
    """

    micro_per_epoch: int
    accum: int
    epochs: int

    @property
    def steps_per_epoch(self) -> int:
        return self.micro_per_epoch // self.accum

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def tail_micro(self) -> int:
        """Micro-batches at the end of each epoch that no step uses."""
        return self.micro_per_epoch - self.steps_per_epoch * self.accum

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, step within the epoch) of a global step."""
        return divmod(step, self.steps_per_epoch)

    def lr_epoch(self, step: int) -> float:
        """The fractional epoch the lr of ``step`` is computed from."""
        epoch, group = self.position(step)
        return epoch + group * self.accum / self.micro_per_epoch
