"""The training engine: one optimizer step, one epoch, and the hooks that run around them.

The engine knows how to train (accumulation, AMP, DDP, non-finite losses, the per-step lr and
masks); everything a run does besides training — metrics lines, snapshots, checkpoints, the
progress bar, stop conditions, the exported model and summary — is a :class:`Hook`.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..errors import TrainingError
from ..masking import make_generator, mask_scores
from ..model import MaskedAutoencoderViT
from ..precision import autocast
from ..runs import RunFolder
from .config import TrainConfig
from .data import ImageFolderDataset, ResumableDistributedSampler
from .distributed import DistInfo, agree_on_stop
from .schedule import StepSchedule, lr_at

log = logging.getLogger(__name__)

COMPLETED, STOPPED, INTERRUPTED = "completed", "stopped", "interrupted"


@dataclass
class Counters:
    """Where a run is and what it has seen; saved in every checkpoint."""

    step: int = 0
    images_seen: int = 0
    elapsed_before: float = 0.0  # seconds trained by earlier invocations
    skipped: int = 0             # unreadable images
    nonfinite_total: int = 0
    last_loss: float | None = None


@dataclass(frozen=True)
class StepOutput:
    """What one optimizer step did."""

    step: int                    # the step count after it
    lr: float
    loss: torch.Tensor | None    # mean micro-batch loss, None when the step was skipped
    images: int                  # images processed, all processes together
    data_wait_s: float           # time spent waiting for batches


@dataclass
class TrainParts:
    """Everything the engine trains with (built by the Trainer)."""

    config: TrainConfig
    run: RunFolder
    dist: DistInfo
    device: torch.device
    model: MaskedAutoencoderViT
    forward: Any                 # the model, its DDP wrapper, or a compiled one
    ddp: DistributedDataParallel | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    dataset: ImageFolderDataset
    sampler: ResumableDistributedSampler
    loader: DataLoader
    schedule: StepSchedule
    global_batch: int
    lr: float


class Hook:
    """Runs around the engine's steps. Override what you need; every method defaults to nothing."""

    def on_start(self, engine: "Engine") -> None:
        """Before the first step of this invocation."""

    def stop_reason(self, engine: "Engine") -> str | None:
        """After each step: a status (``stopped``/``interrupted``) to stop the run, or None."""
        return None

    def after_step(self, engine: "Engine", out: StepOutput, stopping: bool) -> None:
        """After each step; ``stopping`` tells whether this was the invocation's last."""

    def on_end(self, engine: "Engine", status: str) -> None:
        """After the last step, with how the run ended (not called when a step raised)."""

    def close(self) -> None:
        """Always, last: release what ``on_start`` took (signal handlers, a progress bar)."""


class Engine:
    """Trains ``parts`` step by step, calling ``hooks`` in order around each step."""

    def __init__(self, parts: TrainParts, counters: Counters, hooks: Sequence[Hook]) -> None:
        self.parts = parts
        self.config = parts.config
        self.counters = counters
        self.hooks = list(hooks)
        self.start_step = counters.step
        self._started = time.monotonic()
        self._nonfinite_run = 0

    @property
    def step_count(self) -> int:
        return self.counters.step

    def elapsed(self) -> float:
        """Training seconds over every invocation of this run."""
        return self.counters.elapsed_before + time.monotonic() - self._started

    # ------------------------------------------------------------------ the loop
    def run(self) -> str:
        """Train to the end of the schedule or until a hook stops it; returns the status."""
        try:
            self._started = time.monotonic()
            for hook in self.hooks:
                hook.on_start(self)
            status = COMPLETED
            while self.counters.step < self.parts.schedule.total_steps:
                reason = self.epoch()
                if reason is not None:
                    status = reason
                    break
            for hook in self.hooks:
                hook.on_end(self, status)
            return status
        finally:
            for hook in self.hooks:
                hook.close()

    def epoch(self) -> str | None:
        """Train the rest of the current epoch; returns a hook's stop reason, if one stopped it."""
        p = self.parts
        epoch, in_epoch = p.schedule.position(self.counters.step)
        p.sampler.set_epoch(epoch)
        p.sampler.set_start(in_epoch * p.schedule.accum * self.config.batch_size)
        batches = iter(p.loader)
        for _ in range(in_epoch, p.schedule.steps_per_epoch):
            out = self.step(batches)
            reason = next((r for h in self.hooks if (r := h.stop_reason(self)) is not None), None)
            reason = agree_on_stop(reason, (STOPPED, INTERRUPTED), p.dist, p.device)
            for hook in self.hooks:
                hook.after_step(self, out, stopping=reason is not None)
            if reason is not None:
                return reason
        return None

    # ------------------------------------------------------------------ one step
    def step(self, batches: Iterator[Any]) -> StepOutput:
        """One optimizer step over ``accum`` micro-batches drawn from ``batches``."""
        p, c = self.parts, self.config
        lr = lr_at(p.schedule.lr_epoch(self.counters.step), p.lr, c.optim.min_lr,
                   c.optim.warmup_epochs, c.epochs)
        for group in p.optimizer.param_groups:
            group["lr"] = lr
        step_noise = mask_scores(c.mask_strategy, p.global_batch, p.model.config.grid_size,
                                 c.mask_ratio, make_generator(c.seed * 1_000_003 + self.counters.step))
        losses, images, wait = self._accumulate(batches, step_noise)
        loss = torch.stack(losses).mean() if losses else torch.tensor(float("nan"))
        applied = self._apply(loss)
        self.counters.step += 1
        self.counters.images_seen += p.global_batch
        return StepOutput(self.counters.step, lr, loss if applied else None, images, wait)

    def _accumulate(self, batches: Iterator[Any],
                    step_noise: torch.Tensor) -> tuple[list[torch.Tensor], int, float]:
        """Forward and backward every micro-batch of the step; gradients add up."""
        p, c = self.parts, self.config
        losses, images, wait = [], 0, 0.0
        for micro in range(p.schedule.accum):
            t0 = time.monotonic()
            batch = next(batches)
            wait += time.monotonic() - t0
            self.counters.skipped += batch.skipped
            if batch.images.numel() == 0:
                continue
            imgs = batch.images.to(p.device, non_blocking=True)
            noise = self._noise_rows(step_noise, micro, imgs.shape[0]).to(p.device)
            sync = p.ddp is None or micro == p.schedule.accum - 1
            with (nullcontext() if sync or p.ddp is None else p.ddp.no_sync()), \
                    autocast(p.device, p.amp_dtype):
                loss = p.forward(imgs, mask_ratio=c.mask_ratio, noise=noise).loss
            p.scaler.scale(loss / p.schedule.accum).backward()
            losses.append(loss.detach())
            images += imgs.shape[0] * p.dist.world_size
        return losses, images, wait

    def _noise_rows(self, step_noise: torch.Tensor, micro: int, n: int) -> torch.Tensor:
        # The global step batch is ordered like one big batch: rank r's i-th sample of micro m
        # sits at W*(m*b + i) + r, so any world size / accumulation sees the same masks.
        w, b = self.parts.dist.world_size, self.config.batch_size
        rows = w * (micro * b + torch.arange(n)) + self.parts.dist.rank
        return step_noise[rows]

    def _apply(self, loss: torch.Tensor) -> bool:
        """Step the optimizer on a finite loss; skip (and count) a non-finite one."""
        p, c = self.parts, self.config
        if not bool(torch.isfinite(loss)):
            p.optimizer.zero_grad(set_to_none=True)
            self._nonfinite_run += 1
            self.counters.nonfinite_total += 1
            log.warning("non-finite loss at step %d: step skipped", self.counters.step)
            if self._nonfinite_run >= c.max_nonfinite:
                raise TrainingError(
                    f"{self._nonfinite_run} non-finite losses in a row at step {self.counters.step}; "
                    "lower the learning rate (--blr) or use --amp off. The last good checkpoint "
                    "is kept.")
            return False
        self._nonfinite_run = 0
        if c.optim.clip_grad:
            p.scaler.unscale_(p.optimizer)
            torch.nn.utils.clip_grad_norm_(p.model.parameters(), c.optim.clip_grad)
        p.scaler.step(p.optimizer)
        p.scaler.update()
        p.optimizer.zero_grad(set_to_none=True)
        return True
