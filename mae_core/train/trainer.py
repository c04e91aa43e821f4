"""The MAE pretraining loop: AdamW, per-iteration warmup + cosine, accumulation, AMP, DDP,
atomic checkpoints, exact resume, metrics and reconstruction snapshots."""

from __future__ import annotations

import json
import logging
import math
import platform
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..checkpoint import save_model
from ..errors import TrainingError
from ..figure import compose_figure
from ..imaging import fit_image, to_rgb
from ..io_utils import write_json_atomic
from ..masking import make_generator, mask_scores
from ..model import MaskedAutoencoderViT, create_model
from ..precision import autocast
from ..reconstruct import Reconstructor, pick_device
from .config import TrainConfig
from .data import ImageFolderDataset, ResumableDistributedSampler, collate_skip_broken, find_images
from .manifest import describe_data
from .distributed import DistInfo, barrier, init_distributed, mean_across, shutdown
from .optim import build_optimizer
from .schedule import base_lr, lr_at
from .state import latest_checkpoint, load_training_state, rng_state, save_training_state, set_rng_state

log = logging.getLogger(__name__)

EXPORT_NAME = "model.safetensors"


@dataclass
class TrainResult:
    """How a run ended."""

    run_dir: Path
    status: str  # "completed" | "stopped" (max_steps) | "interrupted" (signal)
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
        resume: continue from ``checkpoints/latest`` in the run folder if it exists.
        progress: show a tqdm progress bar (rank 0 only).
        should_stop: optional callable polled after every step (e.g. a job was cancelled).
        on_log: optional callback receiving each metrics record (e.g. job progress).
    """

    def __init__(self, config: TrainConfig, resume: bool = False, progress: bool = True,
                 should_stop=None, on_log=None) -> None:
        config.validate()
        self.config = config
        self.resume = resume
        self.progress = progress
        self.should_stop = should_stop
        self.on_log = on_log
        self._signal: int | None = None

    # ----------------------------------------------------------------- setup
    def _setup(self) -> None:
        c = self.config
        device = pick_device(c.device)
        self.dist: DistInfo = init_distributed(device.type)
        if device.type == "cuda" and self.dist.enabled:
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        self.run_dir = Path(c.output_dir or Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S"))
        self.ckpt_dir = self.run_dir / "checkpoints"
        torch.manual_seed(c.seed + self.dist.rank)

        self.dataset = ImageFolderDataset(
            c.data.path, img_size=c.data.img_size, scale_min=c.data.scale_min, hflip=c.data.hflip,
            augment=c.data.augment, seed=c.seed, cache_px=c.data.cache_px,
            repeats=c.data.repeats, progress=self.progress and self.dist.is_main,
        )
        self.sampler = ResumableDistributedSampler(
            self.dataset, num_replicas=self.dist.world_size, rank=self.dist.rank, seed=c.seed)
        self.loader = DataLoader(
            self.dataset, batch_size=c.batch_size, sampler=self.sampler, drop_last=True,
            num_workers=c.data.num_workers, collate_fn=collate_skip_broken,
            pin_memory=device.type == "cuda", persistent_workers=c.data.num_workers > 0,
        )
        self.accum = c.accum_iter
        if c.effective_batch:
            self.accum = max(1, math.ceil(c.effective_batch / (c.batch_size * self.dist.world_size)))
        self.global_batch = c.batch_size * self.accum * self.dist.world_size
        self.steps_per_epoch = (self.sampler.num_samples // c.batch_size) // self.accum
        if self.steps_per_epoch < 1:
            raise TrainingError(
                f"{len(self.dataset)} images cannot fill one step of {self.global_batch} images; "
                "use a smaller --batch-size or more data"
            )
        self.total_steps = self.steps_per_epoch * c.epochs
        self.lr = base_lr(c.optim.blr, self.global_batch, c.optim.lr)

        model = create_model(c.model, img_size=c.data.img_size, norm_pix_loss=c.norm_pix_loss,
                             **c.model_overrides)
        self.model: MaskedAutoencoderViT = model.to(device)
        self.optimizer = build_optimizer(self.model, self.lr, c.optim.weight_decay, c.optim.betas)
        self.amp_dtype = _amp_dtype(c.amp, device)
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=self.amp_dtype == torch.float16 and device.type == "cuda")
        self.ddp = DistributedDataParallel(self.model) if self.dist.enabled else None
        self.forward = self.ddp or self.model
        if c.compile:
            self.forward = torch.compile(self.forward)

        self.step = 0
        self.images_seen = 0
        self.elapsed_before = 0.0
        self.skipped = 0
        self.nonfinite_total = 0
        self.last_loss: float | None = None
        if self.resume:
            self._load_latest()
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.run_dir / "config.json", c.to_dict())
            self._truncate_metrics()
        self.val_images = self._validation_images() if self.dist.is_main else []
        barrier(self.dist)

    def _validation_images(self, count: int = 4) -> list[Image.Image]:
        source = self.config.data.val_path or self.config.data.path
        images = []
        for path in find_images(source):
            try:
                with Image.open(path) as img:
                    img.load()
                    images.append(fit_image(to_rgb(img), (self.config.data.img_size,) * 2, 1, "crop"))
            except (OSError, ValueError):
                continue
            if len(images) == count:
                break
        return images

    def _load_latest(self) -> None:
        path = latest_checkpoint(self.ckpt_dir) if self.ckpt_dir.exists() else None
        if path is None:
            log.info("no checkpoint in %s: starting from scratch", self.ckpt_dir)
            return
        state = load_training_state(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.images_seen = int(state["images_seen"])
        self.elapsed_before = float(state["elapsed_s"])
        self.skipped = int(state.get("skipped_images", 0))
        self.nonfinite_total = int(state.get("nonfinite_steps", 0))
        self.last_loss = state.get("last_loss")
        rngs = state.get("rng", [])
        if self.dist.rank < len(rngs):
            set_rng_state(rngs[self.dist.rank])
        log.info("resumed from %s at step %d", path.name, self.step)

    # ------------------------------------------------------------ persistence
    def _truncate_metrics(self) -> None:
        """Drop metrics logged after the checkpoint we resumed from (a killed run's tail)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= self.step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue
        path.write_text("".join(k + "\n" for k in kept))

    def _gather_rng(self) -> list[dict[str, Any]]:
        mine = rng_state()
        if not self.dist.enabled:
            return [mine]
        gathered: list[Any] = [None] * self.dist.world_size
        torch.distributed.all_gather_object(gathered, mine)
        return gathered

    def save_checkpoint(self, elapsed: float) -> None:
        rngs = self._gather_rng()  # collective: every rank calls save_checkpoint
        if self.dist.is_main:
            if not all(torch.isfinite(p).all() for p in self.model.parameters()):
                raise TrainingError("weights are not finite; refusing to overwrite a checkpoint")
            state = {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "step": self.step,
                "images_seen": self.images_seen,
                "elapsed_s": elapsed,
                "skipped_images": self.skipped,
                "nonfinite_steps": self.nonfinite_total,
                "last_loss": self.last_loss,
                "rng": rngs,
                "config": json.dumps(self.config.to_dict()),
            }
            save_training_state(self.ckpt_dir, self.step, state, self.config.keep_last)
        barrier(self.dist)

    def snapshot(self) -> None:
        if not self.val_images:
            return
        reconstructor = Reconstructor(self.model, device=self.device)
        recs = [reconstructor.reconstruct(img, self.config.mask_ratio, self.config.mask_strategy,
                                          seed=i) for i, img in enumerate(self.val_images)]
        self.model.train()
        folder = self.run_dir / "snapshots"
        folder.mkdir(exist_ok=True)
        compose_figure(recs).save(folder / f"step_{self.step:08d}.png")

    def export(self, status: str, elapsed: float) -> Path:
        card = {
            "name": self.run_dir.name,
            "training": {
                "status": status, "model_preset": self.config.model, "steps": self.step,
                "epochs": round(self.step / self.steps_per_epoch, 3),
                "images_seen": self.images_seen, "wall_time_s": round(elapsed, 1),
                "hardware": _hardware(self.device), "world_size": self.dist.world_size,
                "effective_batch": self.global_batch, "lr": self.lr,
                "final_loss": self.last_loss, "mask_ratio": self.config.mask_ratio,
                "mask_strategy": self.config.mask_strategy, "skipped_images": self.skipped,
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
            "data": describe_data(self.config.data.path, len(self.dataset.files)),
        }
        return save_model(self.model, self.run_dir / EXPORT_NAME, card)

    # ------------------------------------------------------------------ loop
    def _install_signals(self):
        previous = {}

        def handler(signum, frame):
            self._signal = signum
            log.warning("signal %d: checkpointing after this step", signum)

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not in the main thread (e.g. a worker thread); caller handles
                pass
        return previous

    def _noise_rows(self, step_noise: torch.Tensor, micro: int, n: int) -> torch.Tensor:
        # The global step batch is ordered like one big batch: rank r's i-th sample of micro m
        # sits at W*(m*b + i) + r, so any world size / accumulation sees the same masks.
        w, b = self.dist.world_size, self.config.batch_size
        rows = w * (micro * b + torch.arange(n)) + self.dist.rank
        return step_noise[rows]

    def run(self) -> TrainResult:
        self._setup()
        c = self.config
        previous = self._install_signals()
        start_time = time.monotonic()
        last_ckpt_time = start_time
        status = "completed"
        grid = self.model.config.grid_size
        bar = tqdm(total=self.total_steps, initial=self.step, desc="pretrain", unit="step",
                   disable=not (self.progress and self.dist.is_main), dynamic_ncols=True)
        window_loss, window_images, window_wait, window_start = [], 0, 0.0, time.monotonic()
        consecutive_nonfinite = 0
        try:
            while self.step < self.total_steps:
                epoch, in_epoch = divmod(self.step, self.steps_per_epoch)
                self.sampler.set_epoch(epoch)
                self.sampler.set_start(in_epoch * self.accum * c.batch_size)
                batches = iter(self.loader)
                for _ in range(in_epoch, self.steps_per_epoch):
                    lr = lr_at(epoch + (self.step % self.steps_per_epoch) / self.steps_per_epoch,
                               self.lr, c.optim.min_lr, c.optim.warmup_epochs, c.epochs)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    step_noise = mask_scores(
                        c.mask_strategy, self.global_batch, grid, c.mask_ratio,
                        make_generator(c.seed * 1_000_003 + self.step))
                    losses = []
                    for micro in range(self.accum):
                        t0 = time.monotonic()
                        batch = next(batches)
                        window_wait += time.monotonic() - t0
                        self.skipped += batch.skipped
                        if batch.images.numel() == 0:
                            continue
                        imgs = batch.images.to(self.device, non_blocking=True)
                        noise = self._noise_rows(step_noise, micro, imgs.shape[0]).to(self.device)
                        sync = self.ddp is None or micro == self.accum - 1
                        with (nullcontext() if sync else self.ddp.no_sync()), autocast(self.device, self.amp_dtype):
                            loss = self.forward(imgs, mask_ratio=c.mask_ratio, noise=noise).loss
                        self.scaler.scale(loss / self.accum).backward()
                        losses.append(loss.detach())
                        window_images += imgs.shape[0] * self.dist.world_size
                    step_loss = torch.stack(losses).mean() if losses else torch.tensor(float("nan"))
                    if not bool(torch.isfinite(step_loss)):
                        self.optimizer.zero_grad(set_to_none=True)
                        consecutive_nonfinite += 1
                        self.nonfinite_total += 1
                        log.warning("non-finite loss at step %d: step skipped", self.step)
                        if consecutive_nonfinite >= c.max_nonfinite:
                            raise TrainingError(
                                f"{consecutive_nonfinite} non-finite losses in a row at step "
                                f"{self.step}; lower the learning rate (--blr) or use --amp off. "
                                "The last good checkpoint is kept."
                            )
                    else:
                        consecutive_nonfinite = 0
                        if c.optim.clip_grad:
                            self.scaler.unscale_(self.optimizer)
                            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.optim.clip_grad)
                        self.scaler.step(self.optimizer)
                        self.scaler.update()
                        self.optimizer.zero_grad(set_to_none=True)
                        window_loss.append(step_loss)
                    self.step += 1
                    self.images_seen += self.global_batch
                    bar.update(1)

                    if self.step % c.log_every == 0 or self.step == self.total_steps:
                        now = time.monotonic()
                        mean_loss = (mean_across(torch.stack(window_loss).mean(), self.dist).item()
                                     if window_loss else float("nan"))
                        self.last_loss = mean_loss
                        span = max(now - window_start, 1e-9)
                        record = {
                            "step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
                            "lr": lr, "loss": mean_loss, "images_per_s": window_images / span,
                            "data_wait_frac": min(1.0, window_wait / span),
                            "elapsed_s": round(self.elapsed_before + now - start_time, 2),
                        }
                        if self.dist.is_main:
                            with open(self.run_dir / "metrics.jsonl", "a") as f:
                                f.write(json.dumps(record) + "\n")
                            bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}",
                                            ips=f"{record['images_per_s']:.1f}")
                            if self.on_log:
                                self.on_log({**record, "total_steps": self.total_steps})
                        window_loss, window_images, window_wait, window_start = [], 0, 0.0, now
                    if self.dist.is_main and c.snapshot_every and self.step % c.snapshot_every == 0:
                        self.snapshot()

                    stop = self._signal is not None or bool(self.should_stop and self.should_stop())
                    stop = stop or (c.max_steps is not None and self.step >= c.max_steps)
                    due = (self.step % c.ckpt_every_steps == 0
                           or time.monotonic() - last_ckpt_time > 60 * c.ckpt_every_minutes)
                    if due or stop or self.step == self.total_steps:
                        self.save_checkpoint(self.elapsed_before + time.monotonic() - start_time)
                        last_ckpt_time = time.monotonic()
                    if stop:
                        status = "interrupted" if self._signal is not None else "stopped"
                        break
                if status != "completed":
                    break
            elapsed = self.elapsed_before + time.monotonic() - start_time
            export_path = None
            if self.dist.is_main:
                if status == "completed":
                    self.snapshot()
                    export_path = self.export(status, elapsed)
                write_json_atomic(self.run_dir / "summary.json", {
                    "status": status, "step": self.step, "total_steps": self.total_steps,
                    "images_seen": self.images_seen, "final_loss": self.last_loss,
                    "wall_time_s": round(elapsed, 1), "skipped_images": self.skipped,
                    "nonfinite_steps": self.nonfinite_total,
                    "export": str(export_path) if export_path else None,
                })
            if self.skipped:
                log.warning("%d unreadable images were skipped", self.skipped)
            return TrainResult(self.run_dir, status, self.step, self.images_seen, self.last_loss,
                               self.skipped, self.nonfinite_total, export_path)
        finally:
            bar.close()
            for sig, old in previous.items():
                signal.signal(sig, old)
            shutdown(self.dist)


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
