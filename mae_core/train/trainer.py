"""The MAE pretraining run: builds the parts (data, model, optimizer), resumes, and runs the
engine with its hooks. AdamW, per-iteration warmup + cosine, accumulation, AMP, DDP, atomic
checkpoints, exact resume, metrics and reconstruction snapshots."""

from __future__ import annotations

import logging
import math
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..errors import InvalidParameterError, TrainingError
from ..imaging import fit_image, to_rgb
from ..model import create_model
from ..reconstruct import pick_device
from ..runs import EXPORT_FILE, Fence, RunFolder
from .config import TrainConfig
from .data import ImageFolderDataset, ResumableDistributedSampler, collate_skip_broken, find_images
from .distributed import DistInfo, barrier, init_distributed, shutdown
from .fields import check_batch_fits
from .init import init_from_checkpoint
from .engine import Counters, Engine, Hook, TrainParts
from .hooks import (
    Checkpoints,
    Export,
    MetricsLogger,
    MetricsSink,
    ProgressBar,
    Snapshots,
    StepBudget,
    StopOnSignal,
    StopWhen,
    Summary,
)
from .manifest import describe_data
from .optim import build_optimizer
from .schedule import StepSchedule, base_lr
from .state import load_training_state, set_rng_state

log = logging.getLogger(__name__)

EXPORT_NAME = EXPORT_FILE  # kept for callers of the old name


@dataclass
class TrainResult:
    """How a run ended."""

    run_dir: Path
    status: str  # "completed" | "stopped" (max_steps, should_stop) | "interrupted" (signal)
    step: int
    images_seen: int
    final_loss: float | None
    skipped_images: int
    nonfinite_steps: int
    export_path: Path | None


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16":
        return torch.float16
    return torch.bfloat16


class Trainer:
    """Runs one pretraining job described by a ``TrainConfig``.

    Args:
        config: the resolved configuration (``config.output_dir`` is the run folder).
            ``config.max_steps`` is this invocation's budget of steps, not part of the schedule.
        resume: continue from ``checkpoints/latest`` in the run folder if it exists.
        progress: show a tqdm progress bar (rank 0 only).
        should_stop: optional callable polled after every step (e.g. a job was cancelled).
        on_log: optional callback receiving each metrics record (e.g. job progress).
        fence: optional callable run before every write to the run folder; it raises to stop
            the run without writing (a job runner's lease check).
    """

    def __init__(self, config: TrainConfig, resume: bool = False, progress: bool = True,
                 should_stop: Callable[[], bool] | None = None,
                 on_log: MetricsSink | None = None, fence: Fence | None = None) -> None:
        config.validate()
        self.config = config
        self.resume = resume
        self.progress = progress
        self.should_stop = should_stop
        self.on_log = on_log
        self.fence = fence

    def run(self) -> TrainResult:
        dist = init_distributed(pick_device(self.config.device).type)
        try:
            parts = self._build(dist)
            counters = self._resume(parts) if self.resume else Counters()
            val_images = self._start_run_folder(parts, counters)
            hooks, export = self._hooks(parts, val_images)
            status = Engine(parts, counters, hooks).run()
            return TrainResult(parts.run.path, status, counters.step, counters.images_seen,
                               counters.last_loss, counters.skipped, counters.nonfinite_total,
                               export.path)
        finally:
            shutdown(dist)

    # ------------------------------------------------------------------ building
    def _build(self, dist: DistInfo) -> TrainParts:
        c = self.config
        device = pick_device(c.device)
        if device.type == "cuda" and dist.enabled:
            device = torch.device("cuda", dist.local_rank)
        run = RunFolder(c.output_dir or Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S"),
                        fence=self.fence)
        torch.manual_seed(c.seed + dist.rank)
        dataset, sampler, loader = self._data(dist, device)
        accum = c.accum_iter
        if c.effective_batch:
            accum = max(1, math.ceil(c.effective_batch / (c.batch_size * dist.world_size)))
        global_batch = c.batch_size * accum * dist.world_size
        try:  # this process's share of the data must fill one batch
            check_batch_fits(c.batch_size, sampler.num_samples, f"this process's share of {c.data.path}")
        except InvalidParameterError as exc:
            raise TrainingError(f"{exc} (--batch-size), or add data") from None
        schedule = StepSchedule(sampler.num_samples // c.batch_size, accum, c.epochs)
        if schedule.steps_per_epoch < 1:
            raise TrainingError(f"{len(dataset)} images cannot fill one step of {global_batch} "
                                "images; use a smaller --batch-size or more data")
        if schedule.tail_micro:
            log.info("%d micro-batches at the end of each epoch do not fill an accumulation "
                     "group of %d and are skipped (the official loop discards their gradients)",
                     schedule.tail_micro, accum)
        lr = base_lr(c.optim.blr, global_batch, c.optim.lr)
        model = create_model(c.model, img_size=c.data.img_size, norm_pix_loss=c.norm_pix_loss,
                             **c.model_overrides)
        if c.init_from and (not self.resume or run.latest_checkpoint() is None):
            init_from_checkpoint(model, c.init_from)  # a resume continues from its own checkpoint
        model = model.to(device)
        amp_dtype = _amp_dtype(c.amp, device)
        scaler = torch.amp.GradScaler(
            device.type, enabled=amp_dtype == torch.float16 and device.type == "cuda")
        ddp = DistributedDataParallel(model) if dist.enabled else None
        forward: Any = ddp or model
        if c.compile:
            forward = torch.compile(forward)
        return TrainParts(
            config=c, run=run, dist=dist, device=device, model=model, forward=forward, ddp=ddp,
            optimizer=build_optimizer(model, lr, c.optim.weight_decay, c.optim.betas),
            scaler=scaler, amp_dtype=amp_dtype, dataset=dataset, sampler=sampler, loader=loader,
            schedule=schedule, global_batch=global_batch, lr=lr)

    def _data(self, dist: DistInfo, device: torch.device
              ) -> tuple[ImageFolderDataset, ResumableDistributedSampler, DataLoader]:
        c = self.config
        dataset = ImageFolderDataset(
            c.data.path, img_size=c.data.img_size, scale_min=c.data.scale_min, hflip=c.data.hflip,
            augment=c.data.augment, seed=c.seed, cache_px=c.data.cache_px,
            repeats=c.data.repeats, progress=self.progress and dist.is_main)
        sampler = ResumableDistributedSampler(dataset, num_replicas=dist.world_size,
                                              rank=dist.rank, seed=c.seed)
        loader = DataLoader(
            dataset, batch_size=c.batch_size, sampler=sampler, drop_last=True,
            num_workers=c.data.num_workers, collate_fn=collate_skip_broken,
            pin_memory=device.type == "cuda", persistent_workers=c.data.num_workers > 0)
        return dataset, sampler, loader

    def _resume(self, parts: TrainParts) -> Counters:
        """Load ``checkpoints/latest`` into the parts; the counters it saved (or fresh ones)."""
        path = parts.run.latest_checkpoint()
        if path is None:
            log.info("no checkpoint in %s: starting from scratch", parts.run.checkpoints_dir)
            return Counters()
        state = load_training_state(path)
        parts.model.load_state_dict(state["model"])
        parts.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            parts.scaler.load_state_dict(state["scaler"])
        rngs = state.get("rng", [])
        if parts.dist.rank < len(rngs):
            set_rng_state(rngs[parts.dist.rank])
        log.info("resumed from %s at step %d", path.name, int(state["step"]))
        return Counters(
            step=int(state["step"]), images_seen=int(state["images_seen"]),
            elapsed_before=float(state["elapsed_s"]), skipped=int(state.get("skipped_images", 0)),
            nonfinite_total=int(state.get("nonfinite_steps", 0)), last_loss=state.get("last_loss"))

    def _start_run_folder(self, parts: TrainParts, counters: Counters) -> list[Image.Image]:
        """Write config.json, drop metrics past the checkpoint; the snapshot images."""
        images: list[Image.Image] = []
        if parts.dist.is_main:
            parts.run.create()
            # max_steps budgets one invocation; the saved config describes the schedule only
            parts.run.write_config(self.config.replace(max_steps=None).to_dict())
            parts.run.truncate_metrics(counters.step)
            images = self._validation_images()
        barrier(parts.dist)
        return images

    def _validation_images(self, count: int = 4) -> list[Image.Image]:
        source = self.config.data.val_path or self.config.data.path
        size = (self.config.data.img_size,) * 2
        images = []
        for path in find_images(source):
            try:
                with Image.open(path) as img:
                    img.load()
                    images.append(fit_image(to_rgb(img), size, 1, "crop"))
            except (OSError, ValueError):
                continue
            if len(images) == count:
                break
        return images

    def _hooks(self, parts: TrainParts, val_images: list[Image.Image]) -> tuple[list[Hook], Export]:
        bar = ProgressBar(self.progress)
        sinks: list[MetricsSink] = [parts.run.append_metrics, bar.show]
        if self.on_log is not None:
            on_log = self.on_log
            total = parts.schedule.total_steps
            sinks.append(lambda record: on_log({**record, "total_steps": total}))
        export = Export(self._card)
        hooks: list[Hook] = [
            StopOnSignal(), StopWhen(self.should_stop), StepBudget(self.config.max_steps),
            bar, MetricsLogger(sinks), Snapshots(val_images), Checkpoints(),
            export, Summary(export),
        ]
        return hooks, export

    def _card(self, engine: Engine, status: str) -> dict[str, Any]:
        p, c, k = engine.parts, self.config, engine.counters
        return {
            "name": p.run.path.name,
            "training": {
                "status": status, "model_preset": c.model, "steps": k.step,
                "epochs": round(k.step / p.schedule.steps_per_epoch, 3),
                "images_seen": k.images_seen, "wall_time_s": round(engine.elapsed(), 1),
                "hardware": _hardware(p.device), "world_size": p.dist.world_size,
                "effective_batch": p.global_batch, "lr": p.lr,
                "final_loss": k.last_loss, "mask_ratio": c.mask_ratio,
                "mask_strategy": c.mask_strategy, "skipped_images": k.skipped,
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
            "data": describe_data(c.data.path, len(p.dataset.files)),
        }


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({torch.get_num_threads()} threads)"
