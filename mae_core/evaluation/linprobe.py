"""Linear probing (paper Table 10): frozen encoder, BatchNorm1d(affine=False) + linear head.

Two modes, both with ``main_linprobe.py``'s head, optimiser and schedule (LARS, blr 0.1, weight
decay 0, 90 epochs, 10 warmup, min lr 0, head weight trunc-normal std 0.01) and the same
validation (``eval_transform`` centre crops):

- ``fast`` (default): features are extracted once, from the evaluation crops, and the head is
  trained on them; no augmentation, which makes probing a matter of seconds on a CPU.
- ``paper``: the official protocol; every epoch each training image is a fresh
  RandomResizedCrop + flip (``linprobe_train_transform``) through the frozen encoder.

Features are the official model's pre-head output: ``norm(x)[:, 0]`` for ``pool="cls"`` (the
official linear-probe setting ``--cls_token``) or the fresh, frozen ``fc_norm`` of the mean
patch token for ``pool="mean"`` (``--global_pool``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..checkpoint import load_model
from ..errors import InvalidParameterError, TrainingError
from ..io_utils import write_json_atomic
from ..model import MaskedAutoencoderViT
from ..precision import autocast, autocast_dtype
from ..reconstruct import pick_device
from ..train.schedule import base_lr, lr_at
from .data import LabelledImageFolder, eval_transform, linprobe_train_transform, topk_accuracy
from .finetune import POOLS, MAEClassifier
from .lars import LARS
from .report import classification_report
from .resume import load_state, save_state

log = logging.getLogger(__name__)

MODES = ("fast", "paper")
Batches = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]  # epoch -> (feats, labels)


@dataclass(frozen=True)
class LinprobeConfig:
    """Linear-probe settings, named as ``main_linprobe.py``'s arguments (see the module doc)."""

    checkpoint: str = ""
    train_dir: str = ""
    val_dir: str = ""
    output_dir: str = ""
    mode: str = "fast"
    epochs: int = 90
    batch_size: int = 256
    blr: float = 0.1
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float = 0.0
    warmup_epochs: float = 10
    optimizer: str = "lars"  # or "sgd"
    pool: str = "cls"  # or "mean"
    device: str | None = None
    seed: int = 0
    num_workers: int = 0


def _features(extractor: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Frozen-encoder features in float32 (computed under bf16 autocast on CUDA, as the official
    code runs its encoder under amp)."""
    device = x.device
    with torch.no_grad(), autocast(device, autocast_dtype("auto", device)):
        return extractor(x).float()


def feature_extractor(model: MaskedAutoencoderViT, pool: str) -> MAEClassifier:
    """The frozen official model without a head: ``extractor(imgs)`` → features [N, D], for
    square inputs of the checkpoint's (first) side."""
    size = model.config.img_size[0]
    extractor = MAEClassifier(model, num_classes=0, pool=pool, img_size=size).eval()
    extractor.requires_grad_(False)
    return extractor


@torch.inference_mode()
def extract_features(extractor: nn.Module, dataset: Dataset, device, batch_size: int = 64,
                     num_workers: int = 0, desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    feats, labels = [], []
    for x, y in tqdm(loader, desc=desc, leave=False):
        feats.append(_features(extractor, x.to(device)).cpu())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def _cached_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[Batches, int]:
    n = x.shape[0]
    steps = max(1, n // batch_size)  # drop_last, as the official loader; one short batch if n < batch

    def epoch_batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(n)
        for s in range(steps):
            idx = perm[s * batch_size:(s + 1) * batch_size]
            yield x[idx], y[idx]

    return epoch_batches, steps


def _augmented_batches(extractor: nn.Module, dataset: Dataset, config: LinprobeConfig,
                       device) -> tuple[Batches, int]:
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                        num_workers=config.num_workers)
    if len(loader) == 0:
        raise TrainingError(f"{len(dataset)} training images cannot fill a batch of "  # type: ignore[arg-type]
                            f"{config.batch_size} (mode 'paper' drops the last partial batch)")

    def epoch_batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in loader:
            yield _features(extractor, x.to(device)), y  # (no yield inside no_grad: the head needs grad)

    return epoch_batches, len(loader)


EpochFn = Callable[[dict[str, Any]], bool]  # called after each epoch; True stops the run


def train_linear_head(batches: Batches, steps: int, dim: int, num_classes: int,
                      config: LinprobeConfig, device,
                      on_epoch: EpochFn | None = None, state_path: str | Path | None = None
                      ) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train BN + linear head on feature batches; returns the head and the loss history.
    ``on_epoch(record)`` after each epoch (a job's progress); when it returns True the run stops.
    ``state_path``: the head, optimizer and RNG state are saved there after each epoch, and a
    run that finds the file continues after its last completed epoch (``resume.py``)."""
    linear = nn.Linear(dim, num_classes)
    nn.init.trunc_normal_(linear.weight, std=0.01)  # main_linprobe.py, after MoCo v3
    nn.init.zeros_(linear.bias)
    head = nn.Sequential(nn.BatchNorm1d(dim, affine=False, eps=1e-6), linear).to(device)
    lr = base_lr(config.blr, config.batch_size, config.lr)
    opt: torch.optim.Optimizer
    if config.optimizer == "lars":
        opt = LARS(head.parameters(), lr=lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=config.weight_decay)
    start, history, _ = load_state(state_path, {"head": head}, opt)
    for epoch in tqdm(range(start, config.epochs), desc="linprobe", unit="epoch", leave=False):
        head.train()
        total = 0.0
        for s, (x, y) in enumerate(batches(epoch)):
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch + s / steps, lr, config.min_lr, config.warmup_epochs, config.epochs)
            loss = nn.functional.cross_entropy(head(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        history.append({"epoch": epoch + 1, "loss": total / steps})
        if state_path is not None:
            save_state(state_path, epoch + 1, {"head": head}, opt, history)
        if on_epoch is not None and on_epoch(history[-1]):
            break
    return head.eval(), history


def linear_probe(config: LinprobeConfig, model: MaskedAutoencoderViT | None = None,
                 on_epoch: EpochFn | None = None,
                 state_path: str | Path | None = None) -> dict[str, Any]:
    """Run a linear probe; writes ``linprobe.json`` in ``output_dir`` if set, returns the result.
    ``state_path``: per-epoch resume state (see ``train_linear_head``)."""
    if config.mode not in MODES:
        raise InvalidParameterError(f"linear-probe mode must be one of {', '.join(MODES)}, got {config.mode!r}")
    if config.pool not in POOLS:
        raise InvalidParameterError(f"pool must be one of {', '.join(POOLS)}, got {config.pool!r}")
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    extractor = feature_extractor(model or load_model(config.checkpoint), config.pool).to(device)
    size = extractor.patch_embed.img_size[0]
    evaluation = eval_transform(size)
    if config.mode == "fast":
        train_set = LabelledImageFolder(config.train_dir, evaluation)
        tx, ty = extract_features(extractor, train_set, device, num_workers=config.num_workers,
                                  desc="train features")
        batches, steps = _cached_batches(tx, ty, config.batch_size)
    else:
        train_set = LabelledImageFolder(config.train_dir, linprobe_train_transform(size))
        batches, steps = _augmented_batches(extractor, train_set, config, device)
    val_set = LabelledImageFolder(config.val_dir, evaluation, classes=train_set.classes)
    vx, vy = extract_features(extractor, val_set, device, num_workers=config.num_workers,
                              desc="val features")
    head, history = train_linear_head(batches, steps, extractor.num_features,
                                      len(train_set.classes), config, device, on_epoch,
                                      state_path)
    with torch.no_grad():
        logits = head(vx.to(device)).cpu()
    accuracy = topk_accuracy(logits, vy)
    result = {"protocol": "linprobe", "config": asdict(config), "input_size": size,
              "classes": train_set.classes, "num_train": len(train_set), "num_val": len(val_set),
              **classification_report(logits, vy, train_set.classes), **accuracy, "history": history}
    if config.output_dir:
        write_json_atomic(Path(config.output_dir) / "linprobe.json", result)
    log.info("linear probe: %s", ", ".join(f"{k} {v:.2f}%" for k, v in accuracy.items()))
    return result
