"""Linear probing (paper Table 10): frozen encoder, BatchNorm1d(affine=False) + linear head."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..checkpoint import load_model
from ..io_utils import write_json_atomic
from ..model import MaskedAutoencoderViT
from ..reconstruct import pick_device
from ..train.schedule import base_lr, lr_at
from .data import LabelledImageFolder, topk_accuracy
from .lars import LARS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinprobeConfig:
    """Linear-probe settings; defaults follow the paper (LARS, blr 0.1, 90 epochs, 10 warmup).

    Features are extracted once from centre crops (no augmentation) and the head is trained on
    them, which is what makes probing fast on a CPU; the paper trains on augmented crops.
    """

    checkpoint: str = ""
    train_dir: str = ""
    val_dir: str = ""
    output_dir: str = ""
    epochs: int = 90
    batch_size: int = 256
    blr: float = 0.1
    lr: float | None = None
    weight_decay: float = 0.0
    warmup_epochs: float = 10
    optimizer: str = "lars"  # or "sgd"
    pool: str = "cls"  # or "mean"
    device: str | None = None
    seed: int = 0
    num_workers: int = 0


@torch.inference_mode()
def extract_features(model: MaskedAutoencoderViT, dataset, pool: str, device, batch_size: int = 64,
                     num_workers: int = 0, desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    feats, labels = [], []
    for x, y in tqdm(loader, desc=desc, leave=False):
        feats.append(model.forward_features(x.to(device), pool=pool).float().cpu())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def train_linear_head(train_x, train_y, val_x, val_y, num_classes: int, config: LinprobeConfig,
                      device) -> dict[str, Any]:
    """Train BN + linear head on cached features; return val accuracy and the loss history."""
    torch.manual_seed(config.seed)
    dim = train_x.shape[1]
    head = nn.Sequential(nn.BatchNorm1d(dim, affine=False, eps=1e-6), nn.Linear(dim, num_classes))
    nn.init.trunc_normal_(head[1].weight, std=0.01)
    nn.init.zeros_(head[1].bias)
    head = head.to(device)
    lr = base_lr(config.blr, config.batch_size, config.lr)
    if config.optimizer == "lars":
        opt = LARS(head.parameters(), lr=lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=config.weight_decay)
    n = train_x.shape[0]
    steps = max(1, n // config.batch_size) if n >= config.batch_size else 1
    history = []
    for epoch in range(config.epochs):
        perm = torch.randperm(n)
        head.train()
        total = 0.0
        for s in range(steps):
            idx = perm[s * config.batch_size:(s + 1) * config.batch_size]
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch + s / steps, lr, 0.0, config.warmup_epochs, config.epochs)
            loss = nn.functional.cross_entropy(head(train_x[idx].to(device)), train_y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        history.append({"epoch": epoch + 1, "loss": total / steps})
    head.eval()
    with torch.no_grad():
        logits = head(val_x.to(device)).cpu()
    return {**topk_accuracy(logits, val_y), "history": history}


def linear_probe(config: LinprobeConfig, model: MaskedAutoencoderViT | None = None) -> dict[str, Any]:
    """Run a linear probe; writes ``linprobe.json`` in ``output_dir`` and returns the result."""
    device = pick_device(config.device)
    model = (model or load_model(config.checkpoint)).to(device).eval()
    size = model.config.img_size[0]
    train_set = LabelledImageFolder(config.train_dir, img_size=size)
    val_set = LabelledImageFolder(config.val_dir, img_size=size, classes=train_set.classes)
    tx, ty = extract_features(model, train_set, config.pool, device, num_workers=config.num_workers,
                              desc="train features")
    vx, vy = extract_features(model, val_set, config.pool, device, num_workers=config.num_workers,
                              desc="val features")
    result = train_linear_head(tx, ty, vx, vy, len(train_set.classes), config, device)
    result = {"protocol": "linprobe", "config": asdict(config), "classes": train_set.classes,
              "num_train": len(train_set), "num_val": len(val_set), **result}
    if config.output_dir:
        write_json_atomic(Path(config.output_dir) / "linprobe.json", result)
    log.info("linear probe: top1 %.2f%% top5 %.2f%%", result["top1"], result["top5"])
    return result
