"""End-to-end and partial fine-tuning (paper Table 9 and Figure 9)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..checkpoint import load_model
from ..io_utils import write_json_atomic
from ..model import MaskedAutoencoderViT
from ..precision import autocast, autocast_dtype
from ..reconstruct import pick_device
from ..train.schedule import base_lr, lr_at
from .data import LabelledImageFolder, topk_accuracy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning settings; defaults from the paper's Table 9 (ViT-L).

    ``tune_blocks`` None trains everything; K trains only the last K encoder blocks, the final
    norm and the head (Figure 9's partial fine-tuning; K = 0 trains the head alone).
    """

    checkpoint: str = ""
    train_dir: str = ""
    val_dir: str = ""
    output_dir: str = ""
    epochs: int = 50
    batch_size: int = 64
    blr: float = 1e-3
    lr: float | None = None
    layer_decay: float = 0.75
    weight_decay: float = 0.05
    drop_path: float = 0.1
    mixup: float = 0.8
    cutmix: float = 1.0
    smoothing: float = 0.1
    warmup_epochs: float = 5
    tune_blocks: int | None = None
    pool: str = "mean"
    device: str | None = None
    seed: int = 0
    num_workers: int = 0


class MAEClassifier(nn.Module):
    """MAE encoder + pooled features + LayerNorm + linear head (global average pooling by default)."""

    def __init__(self, encoder: MaskedAutoencoderViT, num_classes: int, pool: str = "mean") -> None:
        super().__init__()
        self.encoder = encoder
        self.pool = pool
        dim = encoder.config.embed_dim
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)
        nn.init.zeros_(self.head.bias)
        for name, p in encoder.named_parameters():  # the decoder plays no part in classification
            if name.startswith(("decoder_", "mask_token")):
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc_norm(self.encoder.forward_features(x, pool=self.pool)))


def layer_id(name: str, depth: int) -> int:
    """0 for embeddings, i + 1 for block i, depth + 1 for the final norm and the head."""
    if name.startswith(("encoder.cls_token", "encoder.pos_embed", "encoder.patch_embed")):
        return 0
    if name.startswith("encoder.blocks."):
        return int(name.split(".")[2]) + 1
    return depth + 1


def layer_decay_groups(model: MAEClassifier, weight_decay: float, layer_decay: float) -> list[dict]:
    depth = model.encoder.config.depth
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lid = layer_id(name, depth)
        decay = p.ndim >= 2 and "token" not in name
        key = (lid, decay)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": weight_decay if decay else 0.0,
                           "lr_scale": layer_decay ** (depth + 1 - lid)}
        groups[key]["params"].append(p)
    return list(groups.values())


def freeze_for_partial(model: MAEClassifier, tune_blocks: int | None) -> None:
    if tune_blocks is None:
        return
    depth = model.encoder.config.depth
    if not 0 <= tune_blocks <= depth:
        from ..errors import InvalidParameterError

        raise InvalidParameterError(f"--tune-blocks must be in [0, {depth}], got {tune_blocks}")
    for name, p in model.encoder.named_parameters():
        lid = layer_id("encoder." + name, depth)
        trainable = (lid > depth - tune_blocks and lid <= depth) or (
            tune_blocks > 0 and name.startswith("norm."))
        p.requires_grad_(trainable and not name.startswith(("decoder_", "mask_token", "pos_embed")))


def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, mixup: float, cutmix: float,
              smoothing: float, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix (chosen with equal odds when both are on) with label smoothing."""
    off = smoothing / num_classes
    target = torch.full((y.shape[0], num_classes), off, device=x.device)
    target.scatter_(1, y[:, None], 1.0 - smoothing + off)
    if mixup <= 0 and cutmix <= 0:
        return x, target
    use_cutmix = cutmix > 0 and (mixup <= 0 or rng.random() < 0.5)
    lam = float(rng.beta(cutmix, cutmix) if use_cutmix else rng.beta(mixup, mixup))
    flipped = x.flip(0)
    if use_cutmix:
        h, w = x.shape[-2:]
        ch, cw = int(h * np.sqrt(1 - lam)), int(w * np.sqrt(1 - lam))
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        y0, y1 = np.clip([cy - ch // 2, cy + ch // 2], 0, h)
        x0, x1 = np.clip([cx - cw // 2, cx + cw // 2], 0, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = x * lam + flipped * (1 - lam)
    return x, target * lam + target.flip(0) * (1 - lam)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device) -> dict[str, float]:
    model.eval()
    logits, labels = [], []
    for x, y in loader:
        logits.append(model(x.to(device)).float().cpu())
        labels.append(y)
    return topk_accuracy(torch.cat(logits), torch.cat(labels))


def finetune(config: FinetuneConfig, model: MaskedAutoencoderViT | None = None) -> dict[str, Any]:
    """Fine-tune a pretrained encoder; writes ``finetune.json`` in ``output_dir``."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = pick_device(config.device)
    base = model or load_model(config.checkpoint)
    encoder = MaskedAutoencoderViT(base.config.replace(drop_path_rate=config.drop_path))
    encoder.load_state_dict(base.state_dict())
    size = encoder.config.img_size[0]
    train_set = LabelledImageFolder(config.train_dir, img_size=size, train=True)
    val_set = LabelledImageFolder(config.val_dir, img_size=size, classes=train_set.classes)
    num_classes = len(train_set.classes)
    clf = MAEClassifier(encoder, num_classes, config.pool)
    freeze_for_partial(clf, config.tune_blocks)
    clf = clf.to(device)
    groups = layer_decay_groups(clf, config.weight_decay, config.layer_decay)
    lr = base_lr(config.blr, config.batch_size, config.lr)
    opt = torch.optim.AdamW(groups, lr=lr)
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, drop_last=True,
                        num_workers=config.num_workers)
    if len(loader) == 0:
        from ..errors import TrainingError

        raise TrainingError(f"{len(train_set)} training images cannot fill a batch of {config.batch_size}")
    val_loader = DataLoader(val_set, batch_size=config.batch_size, num_workers=config.num_workers)
    amp = autocast(device, autocast_dtype("auto", device))  # bf16 on CUDA, fp32 elsewhere
    history, best = [], None
    for epoch in tqdm(range(config.epochs), desc="finetune", unit="epoch"):
        clf.train()
        total = 0.0
        for s, (x, y) in enumerate(loader):
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch + s / len(loader), lr, 1e-6, config.warmup_epochs,
                                config.epochs) * g["lr_scale"]
            x, y = x.to(device), y.to(device)
            x, target = mix_batch(x, y, num_classes, config.mixup, config.cutmix, config.smoothing, rng)
            with amp:
                loss = torch.sum(-target * torch.log_softmax(clf(x).float(), dim=-1), dim=-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        acc = evaluate(clf, val_loader, device)
        history.append({"epoch": epoch + 1, "loss": total / len(loader), **acc})
        if best is None or acc["top1"] > best["top1"]:
            best = {"epoch": epoch + 1, **acc}
    trainable = sum(p.numel() for p in clf.parameters() if p.requires_grad)
    result = {"protocol": "finetune", "config": asdict(config), "classes": train_set.classes,
              "num_train": len(train_set), "num_val": len(val_set), "trainable_params": trainable,
              "top1": history[-1]["top1"], "top5": history[-1]["top5"], "best": best,
              "history": history}
    if config.output_dir:
        write_json_atomic(Path(config.output_dir) / "finetune.json", result)
    return result
