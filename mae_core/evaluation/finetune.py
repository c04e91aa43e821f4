"""End-to-end and partial fine-tuning (paper Table 9 and Figure 9), as the official code.

The classifier is timm's ``VisionTransformer`` built with the encoder's architecture, which is
what the official ``models_vit.py`` is: its parameter names are the official fine-tuned model's
(an official ``mae_finetuned_vit_*.pth`` state dict loads into it), and

- ``pool="mean"`` (``--global_pool``, the fine-tuning default): the encoder's final ``norm`` is
  removed and the head sees ``fc_norm(mean of the patch tokens)``, ``fc_norm`` a fresh LayerNorm;
- ``pool="cls"`` (``--cls_token``): the head sees ``norm(x)[:, 0]`` with the pretrained ``norm``
  and there is no ``fc_norm``.

Every parameter trains, ``pos_embed`` included (layer 0's lr scale under layer decay, no weight
decay), as ``util/lr_decay.param_groups_lrd``. Fine-tuning at another input size interpolates
the stored position table bicubically (``util/pos_embed.interpolate_pos_embed``); reconstruction
instead recomputes sin-cos tables for other grids (see ``MaskedAutoencoderViT._pos_table``).
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..checkpoint import load_model
from ..config import ModelConfig
from ..errors import CheckpointError, InvalidParameterError, TrainingError
from ..io_utils import write_json_atomic
from ..model import MaskedAutoencoderViT
from ..precision import autocast, autocast_dtype
from ..reconstruct import pick_device
from ..train.schedule import base_lr, lr_at
from .report import classification_report
from .resume import load_state, save_state
from .data import (FINETUNE_AUTO_AUGMENT, LabelledImageFolder, eval_transform,
                   finetune_train_transform, topk_accuracy)

log = logging.getLogger(__name__)

POOLS = ("mean", "cls")


@dataclass(frozen=True)
class SizeRecipe:
    """The settings FINETUNE.md changes with the model size."""

    epochs: int
    blr: float
    layer_decay: float
    drop_path: float


# FINETUNE.md: ViT-B 100 epochs, blr 5e-4, layer decay 0.65, drop path 0.1; ViT-L 50, 1e-3, 0.75,
# 0.2; ViT-H 50, 1e-3, 0.75, 0.3. All: effective batch 1024, wd 0.05, mixup 0.8, cutmix 1.0,
# label smoothing 0.1, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25.
SIZE_RECIPES = {
    "base": SizeRecipe(100, 5e-4, 0.65, 0.1),
    "large": SizeRecipe(50, 1e-3, 0.75, 0.2),
    "huge": SizeRecipe(50, 1e-3, 0.75, 0.3),
}


def size_recipe(model: ModelConfig) -> tuple[str, SizeRecipe]:
    """The FINETUNE.md recipe by depth: up to 12 blocks ViT-B's, up to 24 ViT-L's, else ViT-H's."""
    name = "base" if model.depth <= 12 else "large" if model.depth <= 24 else "huge"
    return name, SIZE_RECIPES[name]


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning settings, named as ``main_finetune.py``'s arguments.

    ``None`` for ``epochs``, ``blr``, ``layer_decay`` and ``drop_path`` takes FINETUNE.md's value
    for the model's size (``size_recipe``). ``tune_blocks`` None trains everything; K trains
    only the last K blocks, the final norm (cls pooling) and the head (Figure 9's partial
    fine-tuning; K = 0 trains the head alone). ``input_size`` None is the checkpoint's size.
    ``aa`` "" turns RandAugment off.
    """

    checkpoint: str = ""
    train_dir: str = ""
    val_dir: str = ""
    output_dir: str = ""
    epochs: int | None = None
    batch_size: int = 64
    blr: float | None = None
    lr: float | None = None
    min_lr: float = 1e-6
    layer_decay: float | None = None
    weight_decay: float = 0.05
    drop_path: float | None = None
    mixup: float = 0.8
    cutmix: float = 1.0
    smoothing: float = 0.1
    aa: str = FINETUNE_AUTO_AUGMENT
    reprob: float = 0.25
    remode: str = "pixel"
    recount: int = 1
    warmup_epochs: float = 5
    input_size: int | None = None
    tune_blocks: int | None = None
    pool: str = "mean"
    device: str | None = None
    seed: int = 0
    num_workers: int = 0

    def resolved(self, model: ModelConfig) -> "FinetuneConfig":
        """A copy with every ``None`` size setting filled from the model's size recipe."""
        _, recipe = size_recipe(model)
        filled = {k: getattr(recipe, k) for k in ("epochs", "blr", "layer_decay", "drop_path")
                  if getattr(self, k) is None}
        return replace(self, **filled)


def interpolate_pos_embed(table: torch.Tensor, old_grid: tuple[int, int],
                          new_grid: tuple[int, int]) -> torch.Tensor:
    """Resize a stored position table [1, 1+L, D] to another grid, as the official
    ``interpolate_pos_embed``: the cls row is kept, the patch rows are interpolated bicubically
    (``align_corners=False``) as a [D, h, w] image."""
    if tuple(old_grid) == tuple(new_grid):
        return table
    dim = table.shape[-1]
    cls_row, patches = table[:, :1], table[:, 1:]
    patches = patches.reshape(1, *old_grid, dim).permute(0, 3, 1, 2)  # [1, D, h, w]
    patches = F.interpolate(patches.float(), size=tuple(new_grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).flatten(1, 2).to(table.dtype)  # [1, L', D]
    return torch.cat([cls_row, patches], dim=1)


class MAEClassifier(VisionTransformer):
    """The official fine-tuning model (``models_vit.VisionTransformer``) from a pretrained MAE.

    Args:
        encoder: the pretrained MAE; its encoder weights are copied (the decoder is dropped).
        num_classes: classes of the head; 0 gives the pre-head features (linear probing).
        pool: "mean" (global average pooling + fc_norm) or "cls" (final norm, cls token).
        drop_path: stochastic depth, linearly increasing to this rate over the blocks.
        img_size: input size; another size than the encoder's interpolates ``pos_embed``.
    """

    def __init__(self, encoder: MaskedAutoencoderViT, num_classes: int, pool: str = "mean",
                 drop_path: float = 0.0, img_size: int | tuple[int, int] | None = None) -> None:
        if pool not in POOLS:
            raise InvalidParameterError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        c = encoder.config
        super().__init__(
            img_size=img_size or c.img_size, patch_size=c.patch_size, in_chans=c.in_chans,
            num_classes=num_classes, global_pool="avg" if pool == "mean" else "token",
            embed_dim=c.embed_dim, depth=c.depth, num_heads=c.num_heads, mlp_ratio=c.mlp_ratio,
            qkv_bias=True, drop_path_rate=drop_path, norm_layer=partial(nn.LayerNorm, eps=c.norm_eps),
        )
        self.pooling = pool  # (timm uses self.pool for its pooling module)
        self._load_encoder(encoder)
        if isinstance(self.head, nn.Linear):  # (an Identity for num_classes=0)
            nn.init.trunc_normal_(self.head.weight, std=2e-5)  # main_finetune.py
            nn.init.zeros_(self.head.bias)

    def _load_encoder(self, encoder: MaskedAutoencoderViT) -> None:
        own = self.state_dict()
        source = encoder.state_dict()
        weights = {k: v for k, v in source.items() if k in own}  # drops decoder_*, mask_token;
        # and, with mean pooling, the encoder's final norm (models_vit.py deletes it)
        weights["pos_embed"] = interpolate_pos_embed(
            source["pos_embed"], encoder.config.grid_size, tuple(self.patch_embed.grid_size))
        fresh = {k for k in own if k.startswith(("head.", "fc_norm."))}
        missing = set(own) - set(weights) - fresh
        if missing:
            raise CheckpointError(f"the encoder lacks {sorted(missing)} for fine-tuning")
        self.load_state_dict(weights, strict=False)


def layer_id(name: str, depth: int) -> int:
    """``util/lr_decay.get_layer_id_for_vit``: 0 for cls_token, pos_embed and patch_embed, i + 1
    for block i, depth + 1 for the rest (norm / fc_norm and the head)."""
    if name in ("cls_token", "pos_embed") or name.startswith("patch_embed"):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def layer_decay_groups(model: MAEClassifier, weight_decay: float, layer_decay: float) -> list[dict]:
    """``util/lr_decay.param_groups_lrd``: lr scale ``layer_decay ** (depth + 1 - layer_id)``;
    no weight decay on 1-D parameters and on the model's ``no_weight_decay()`` (cls_token,
    pos_embed)."""
    depth = len(model.blocks)
    skip = model.no_weight_decay()
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lid = layer_id(name, depth)
        decay = not (p.ndim == 1 or name in skip)
        key = (lid, decay)
        if key not in groups:
            groups[key] = {"params": [], "names": [], "weight_decay": weight_decay if decay else 0.0,
                           "lr_scale": layer_decay ** (depth + 1 - lid)}
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    return list(groups.values())


def freeze_for_partial(model: MAEClassifier, tune_blocks: int | None) -> None:
    """Train only the last ``tune_blocks`` blocks, the final norm and the head (Figure 9)."""
    if tune_blocks is None:
        return
    depth = len(model.blocks)
    if not 0 <= tune_blocks <= depth:
        raise InvalidParameterError(f"--tune-blocks must be in [0, {depth}], got {tune_blocks}")
    for name, p in model.named_parameters():
        lid = layer_id(name, depth)
        head = name.startswith(("head.", "fc_norm."))  # fresh layers always train
        block = depth - tune_blocks < lid <= depth
        final_norm = tune_blocks > 0 and name.startswith("norm.")
        p.requires_grad_(head or block or final_norm)


def make_criterion(config: FinetuneConfig, num_classes: int):
    """timm's Mixup/CutMix (with label smoothing inside) + SoftTargetCrossEntropy, or
    LabelSmoothingCrossEntropy / CrossEntropy without mixing, as ``main_finetune.py``."""
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if config.mixup > 0 or config.cutmix > 0:
        if config.batch_size % 2:
            raise InvalidParameterError(
                f"mixup/cutmix pair each batch with its reverse, so the batch size must be even; "
                f"got {config.batch_size} (or pass --mixup 0 --cutmix 0)")
        mix = Mixup(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, prob=1.0,
                    switch_prob=0.5, mode="batch", label_smoothing=config.smoothing,
                    num_classes=num_classes)
        return mix, SoftTargetCrossEntropy()
    if config.smoothing > 0:
        return None, LabelSmoothingCrossEntropy(smoothing=config.smoothing)
    return None, nn.CrossEntropyLoss()


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device) -> dict[str, float]:
    return topk_accuracy(*predict(model, loader, device))


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [N, C] and labels [N] of the whole loader."""
    model.eval()
    logits, labels = [], []
    for x, y in loader:
        logits.append(model(x.to(device)).float().cpu())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def _seed_everything(seed: int) -> None:
    # timm's transforms draw from `random` and torch, its Mixup from numpy's global generator
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def finetune(config: FinetuneConfig, model: MaskedAutoencoderViT | None = None,
             on_epoch: Callable[[dict[str, Any]], bool] | None = None,
             state_path: str | Path | None = None) -> dict[str, Any]:
    """Fine-tune a pretrained encoder; writes ``finetune.json`` in ``output_dir`` if set.
    ``on_epoch(record)`` after each epoch (a job's progress); when it returns True the run stops.
    ``state_path``: the classifier, optimizer and RNG state are saved there after each epoch,
    and a run that finds the file continues after its last completed epoch (``resume.py``)."""
    _seed_everything(config.seed)
    device = pick_device(config.device)
    base = model or load_model(config.checkpoint)
    size_name, _ = size_recipe(base.config)
    cfg = config.resolved(base.config)
    assert cfg.epochs is not None and cfg.blr is not None and cfg.layer_decay is not None
    size = cfg.input_size or base.config.img_size[0]
    if size % base.config.patch_size:
        raise InvalidParameterError(f"--input-size must be a multiple of the patch size "
                                    f"{base.config.patch_size}, got {size}")
    train_set = LabelledImageFolder(cfg.train_dir, finetune_train_transform(
        size, cfg.aa, cfg.reprob, cfg.remode, cfg.recount))
    val_set = LabelledImageFolder(cfg.val_dir, eval_transform(size), classes=train_set.classes)
    num_classes = len(train_set.classes)
    mixup, criterion = make_criterion(cfg, num_classes)
    clf = MAEClassifier(base, num_classes, cfg.pool, cfg.drop_path or 0.0, size)
    freeze_for_partial(clf, cfg.tune_blocks)
    clf = clf.to(device)
    groups = layer_decay_groups(clf, cfg.weight_decay, cfg.layer_decay)
    lr = base_lr(cfg.blr, cfg.batch_size, cfg.lr)
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in groups], lr=lr)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        num_workers=cfg.num_workers)
    if len(loader) == 0:
        raise TrainingError(f"{len(train_set)} training images cannot fill a batch of {cfg.batch_size}")
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    amp = autocast(device, autocast_dtype("auto", device))  # bf16 on CUDA, fp32 elsewhere
    start, history, extra = load_state(state_path, {"classifier": clf}, opt)
    best: dict[str, Any] | None = extra.get("best")
    for epoch in tqdm(range(start, cfg.epochs), desc="finetune", unit="epoch"):
        clf.train()
        total = 0.0
        for s, (x, y) in enumerate(loader):
            for g in opt.param_groups:  # per iteration, as util/lr_sched.adjust_learning_rate
                g["lr"] = lr_at(epoch + s / len(loader), lr, cfg.min_lr, cfg.warmup_epochs,
                                cfg.epochs) * g["lr_scale"]
            x, y = x.to(device), y.to(device)
            if mixup is not None:
                x, y = mixup(x, y)
            with amp:
                loss = criterion(clf(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        logits, labels = predict(clf, val_loader, device)
        acc = topk_accuracy(logits, labels)
        history.append({"epoch": epoch + 1, "loss": total / len(loader), **acc})
        if best is None or acc["top1"] > best["top1"]:
            best = {"epoch": epoch + 1, **acc}
        if state_path is not None:
            save_state(state_path, epoch + 1, {"classifier": clf}, opt, history, {"best": best})
        if on_epoch is not None and on_epoch(history[-1]):
            break
    if start >= cfg.epochs:  # resumed after the last epoch: only the report is left to make
        logits, labels = predict(clf, val_loader, device)
    trainable = sum(p.numel() for p in clf.parameters() if p.requires_grad)
    result = {"protocol": "finetune", "config": asdict(cfg), "size_recipe": size_name,
              "input_size": size, "classes": train_set.classes, "num_train": len(train_set),
              "num_val": len(val_set), "trainable_params": trainable,
              **{k: v for k, v in history[-1].items() if k.startswith("top")},
              **classification_report(logits, labels, train_set.classes),  # the last epoch's
              **{k: v for k, v in history[-1].items() if k.startswith("top")},
              "best": best, "history": history}
    if cfg.output_dir:
        write_json_atomic(Path(cfg.output_dir) / "finetune.json", result)
    return result
