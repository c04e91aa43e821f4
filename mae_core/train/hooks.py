"""What a run does around its training steps, one hook each: metrics lines, the progress bar,
reconstruction snapshots, checkpoints, stop conditions, and the exported model and summary.

Every file a hook writes goes through the run's :class:`~mae_core.runs.RunFolder`, so every
write is fenced (a job runner's fence raises once another worker owns the job).
"""

from __future__ import annotations

import json
import logging
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..errors import TrainingError
from ..figure import MIN_PANEL, compose_figure
from ..reconstruct import Reconstructor
from .distributed import barrier, mean_across
from .engine import COMPLETED, INTERRUPTED, STOPPED, Engine, Hook, StepOutput
from .state import rng_state

log = logging.getLogger(__name__)

MetricsSink = Callable[[dict[str, Any]], None]


class MetricsLogger(Hook):
    """Every ``log_every`` steps (and at the schedule's end): one metrics record, averaged over
    the steps since the last one and over processes, handed to each sink on the main process."""

    def __init__(self, sinks: list[MetricsSink]) -> None:
        self.sinks = sinks
        self._reset(time.monotonic())

    def _reset(self, now: float) -> None:
        self.losses: list[torch.Tensor] = []
        self.images, self.wait, self.since = 0, 0.0, now

    def on_start(self, engine: Engine) -> None:
        self._reset(time.monotonic())

    def after_step(self, engine: Engine, out: StepOutput, stopping: bool) -> None:
        if out.loss is not None:
            self.losses.append(out.loss)
        self.images += out.images
        self.wait += out.data_wait_s
        total = engine.parts.schedule.total_steps
        if out.step % engine.config.log_every and out.step != total:
            return
        now = time.monotonic()
        mean = torch.stack(self.losses).mean() if self.losses else None
        loss = mean_across(mean, engine.parts.dist).item() if mean is not None else float("nan")
        engine.counters.last_loss = loss
        span = max(now - self.since, 1e-9)
        record = {
            "step": out.step, "epoch": round(out.step / engine.parts.schedule.steps_per_epoch, 4),
            "lr": out.lr, "loss": loss, "images_per_s": self.images / span,
            "data_wait_frac": min(1.0, self.wait / span), "elapsed_s": round(engine.elapsed(), 2),
        }
        if engine.parts.dist.is_main:
            for sink in self.sinks:
                sink(record)
        self._reset(now)


class ProgressBar(Hook):
    """A tqdm bar over the whole schedule (main process, when asked for)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def on_start(self, engine: Engine) -> None:
        self.bar = tqdm(total=engine.parts.schedule.total_steps, initial=engine.step_count,
                        desc="pretrain", unit="step", dynamic_ncols=True,
                        disable=not (self.enabled and engine.parts.dist.is_main))

    def show(self, record: dict[str, Any]) -> None:
        """A metrics sink: the latest loss, lr and throughput beside the bar."""
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                                 ips=f"{record['images_per_s']:.1f}")

    def after_step(self, engine: Engine, out: StepOutput, stopping: bool) -> None:
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Snapshots(Hook):
    """Reconstructions of a fixed set of images every ``snapshot_every`` steps and at the end."""

    def __init__(self, images: list[Image.Image]) -> None:
        self.images = images

    def after_step(self, engine: Engine, out: StepOutput, stopping: bool) -> None:
        every = engine.config.snapshot_every
        if every and out.step % every == 0:
            self.take(engine)

    def on_end(self, engine: Engine, status: str) -> None:
        if status == COMPLETED:
            self.take(engine)

    def take(self, engine: Engine) -> None:
        if not self.images or not engine.parts.dist.is_main:
            return
        p, c = engine.parts, engine.config
        reconstructor = Reconstructor(p.model, device=p.device)
        recs = [reconstructor.reconstruct(img, c.mask_ratio, c.mask_strategy, seed=i)
                for i, img in enumerate(self.images)]
        p.model.train()
        p.run.write_snapshot(engine.step_count, compose_figure(recs, min_panel=MIN_PANEL))


class Checkpoints(Hook):
    """Resumable state every ``ckpt_every_steps`` steps or ``ckpt_every_minutes``, on every stop
    and at the schedule's end. Every process takes part (the RNG states are gathered)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def on_start(self, engine: Engine) -> None:
        self.last = time.monotonic()

    def after_step(self, engine: Engine, out: StepOutput, stopping: bool) -> None:
        c = engine.config
        due = (out.step % c.ckpt_every_steps == 0
               or time.monotonic() - self.last > 60 * c.ckpt_every_minutes)
        if due or stopping or out.step == engine.parts.schedule.total_steps:
            self.save(engine)
            self.last = time.monotonic()

    def save(self, engine: Engine) -> None:
        p, k = engine.parts, engine.counters
        rngs = _gather_rng(engine)  # collective: every rank calls save
        if p.dist.is_main:
            if not all(torch.isfinite(w).all() for w in p.model.parameters()):
                raise TrainingError("weights are not finite; refusing to overwrite a checkpoint")
            state = {
                "model": p.model.state_dict(), "optimizer": p.optimizer.state_dict(),
                "scaler": p.scaler.state_dict() if p.scaler.is_enabled() else {},
                "step": k.step, "images_seen": k.images_seen, "elapsed_s": engine.elapsed(),
                "skipped_images": k.skipped, "nonfinite_steps": k.nonfinite_total,
                "last_loss": k.last_loss, "rng": rngs,
                "config": json.dumps(engine.config.to_dict()),
            }
            p.run.save_checkpoint(k.step, state, engine.config.keep_last)
        barrier(p.dist)


def _gather_rng(engine: Engine) -> list[dict[str, Any]]:
    mine = rng_state()
    dist = engine.parts.dist
    if not dist.enabled:
        return [mine]
    gathered: list[Any] = [None] * dist.world_size
    torch.distributed.all_gather_object(gathered, mine)
    return gathered


# ---------------------------------------------------------------------- stop conditions
class StepBudget(Hook):
    """``max_steps``: at most this many steps in this invocation (a resume gets a new budget;
    the schedule itself always follows ``epochs``)."""

    def __init__(self, max_steps: int | None) -> None:
        self.max_steps = max_steps

    def stop_reason(self, engine: Engine) -> str | None:
        if self.max_steps is not None and engine.step_count - engine.start_step >= self.max_steps:
            return STOPPED
        return None


class StopWhen(Hook):
    """Stop when a callable says so (a job was cancelled, its worker is shutting down)."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self.should_stop = should_stop

    def stop_reason(self, engine: Engine) -> str | None:
        return STOPPED if self.should_stop is not None and self.should_stop() else None


class StopOnSignal(Hook):
    """SIGTERM/SIGINT: finish the step, checkpoint, end ``interrupted`` (exit code 143)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def on_start(self, engine: Engine) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a worker thread): the caller stops us
                pass

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        log.warning("signal %d: checkpointing after this step", signum)

    def stop_reason(self, engine: Engine) -> str | None:
        return INTERRUPTED if self.signum is not None else None

    def close(self) -> None:
        for sig, old in self.previous.items():
            signal.signal(sig, old)
        self.previous = {}


# ---------------------------------------------------------------------- the end of a run
class Export(Hook):
    """When the schedule completes: the model as ``model.safetensors`` with its card."""

    def __init__(self, card: Callable[[Engine, str], dict[str, Any]]) -> None:
        self.card = card
        self.path: Path | None = None

    def on_end(self, engine: Engine, status: str) -> None:
        if status == COMPLETED and engine.parts.dist.is_main:
            self.path = engine.parts.run.export_model(engine.parts.model, self.card(engine, status))


class Summary(Hook):
    """``summary.json``: how this invocation ended, whatever the status."""

    def __init__(self, export: Export) -> None:
        self.export = export

    def on_end(self, engine: Engine, status: str) -> None:
        if not engine.parts.dist.is_main:
            return
        k = engine.counters
        engine.parts.run.write_summary({
            "status": status, "step": k.step, "total_steps": engine.parts.schedule.total_steps,
            "images_seen": k.images_seen, "final_loss": k.last_loss,
            "wall_time_s": round(engine.elapsed(), 1), "skipped_images": k.skipped,
            "nonfinite_steps": k.nonfinite_total,
            "export": str(self.export.path) if self.export.path else None,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
        if k.skipped:
            log.warning("%d unreadable images were skipped", k.skipped)
