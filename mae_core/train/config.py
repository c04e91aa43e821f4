"""Training configuration: frozen dataclasses with named recipes.

Every field can be overridden from the command line or a YAML/JSON file; the resolved config is
logged at start and saved as ``config.json`` in the run folder, which is what ``--resume`` reads.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are augmented.

    Attributes:
        path: a folder of images (searched recursively) or an ImageFolder layout.
        img_size: square crop size fed to the model (224 in the paper).
        scale_min: RandomResizedCrop lower area bound (paper: 0.2; Table 1e).
        hflip: random horizontal flip (paper: yes).
        augment: False gives a deterministic resize + centre crop (for tests and evaluation).
        num_workers: DataLoader worker processes (0 = load in the training process).
        cache_px: if > 0, decode every image once, resize its short side to this many pixels and
            keep it in memory — on CPU-bound machines this removes JPEG decoding from every step.
        val_path: optional held-out folder for reconstruction snapshots.
        repeats: each epoch visits every image this many times. For folders of a few thousand
            images, longer epochs keep DataLoader workers streaming instead of draining at
            every epoch boundary.
    """

    path: str = ""
    img_size: int = 224
    scale_min: float = 0.2
    hflip: bool = True
    augment: bool = True
    num_workers: int = 0
    cache_px: int = 0
    val_path: str = ""
    repeats: int = 1


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and the per-iteration schedule (paper Table 8).

    lr = blr * effective_batch / 256 unless ``lr`` is given; ``warmup_epochs`` of linear warmup,
    then a half-cycle cosine down to ``min_lr``.
    """

    blr: float = 1.5e-4
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_epochs: float = 40.0
    clip_grad: float | None = None  # the paper uses none


@dataclass(frozen=True)
class TrainConfig:
    """A whole pretraining run.

    ``batch_size`` is per process; the effective batch is batch_size x accum_iter x world size.
    If ``effective_batch`` is set, accum_iter is derived from it (the paper: 4096).
    """

    model: str = "mae_vit_base_patch16"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 800
    batch_size: int = 64
    accum_iter: int = 1
    effective_batch: int | None = None
    mask_ratio: float = 0.75
    mask_strategy: str = "random"
    norm_pix_loss: bool = True
    seed: int = 0
    amp: str = "auto"  # auto = bf16 on CUDA, off on CPU; or bf16 / fp16 / off
    compile: bool = False
    device: str | None = None
    output_dir: str = ""
    log_every: int = 20
    snapshot_every: int = 500
    ckpt_every_steps: int = 1000
    ckpt_every_minutes: float = 10.0
    keep_last: int = 3
    max_nonfinite: int = 10
    max_steps: int | None = None  # stop early (the schedule still follows `epochs`)
    init_from: str = ""  # a checkpoint file the model starts from (empty: random init)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        data = dict(data)
        sections = {"data": DataConfig, "optim": OptimConfig}
        for name, klass in sections.items():
            if isinstance(data.get(name), dict):
                data[name] = _build(klass, data[name], name)
        return _build(cls, data, "train")

    def validate(self) -> None:
        """Check every field once, before training starts (nothing re-checks per step); the
        bounds come from ``fields.TRAIN_FIELDS``."""
        from ..masking import check_strategy
        from .fields import config_problems

        problems = []
        if not self.data.path:
            problems.append("no training data: pass --data DIR (a folder of images)")
        problems += config_problems(self)
        if not problems:
            try:
                check_strategy(self.mask_strategy, self.mask_ratio)  # grid: exactly 0.75
            except InvalidParameterError as exc:
                problems.append(str(exc))
        if problems:
            raise InvalidParameterError("; ".join(problems))


def _build(klass, data: dict[str, Any], where: str):
    known = {f.name for f in dataclasses.fields(klass)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidParameterError(f"unknown {where} config fields {unknown}; known: {sorted(known)}")
    if "betas" in data and isinstance(data["betas"], list):
        data["betas"] = tuple(data["betas"])
    return klass(**data)


# --- recipes ---------------------------------------------------------------------------------
RECIPES: dict[str, TrainConfig] = {
    # Paper Table 8 / official main_pretrain.py.
    "paper": TrainConfig(
        model="mae_vit_large_patch16", epochs=800, batch_size=64, effective_batch=4096,
        norm_pix_loss=True, optim=OptimConfig(blr=1.5e-4, warmup_epochs=40),
    ),
    # Sized for a 2-core CPU: tiny encoder, light decoder, short warmup, raw-pixel target (so
    # reconstructions display without borrowing the true patch statistics).
    "cpu-demo": TrainConfig(
        model="mae_vit_tiny_patch16", epochs=20, batch_size=32, norm_pix_loss=False,
        data=DataConfig(img_size=224, cache_px=256),
        optim=OptimConfig(blr=1.5e-4, lr=1e-3, warmup_epochs=2, weight_decay=0.05),
        log_every=10, snapshot_every=200, ckpt_every_steps=200, ckpt_every_minutes=5.0,
    ),
}


def get_recipe(name: str) -> TrainConfig:
    try:
        return RECIPES[name]
    except KeyError:
        raise InvalidParameterError(
            f"unknown recipe {name!r}; choose one of {', '.join(sorted(RECIPES))}"
        ) from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON file of (possibly nested) TrainConfig fields."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise InvalidParameterError(f"{path} must hold a mapping of config fields")
    return data


def merge(config: TrainConfig, changes: dict[str, Any]) -> TrainConfig:
    """Apply nested changes (``{"optim": {"blr": 1e-3}, "epochs": 5}``) to a config."""
    data = config.to_dict()
    for key, value in changes.items():
        if key in ("data", "optim") and isinstance(value, dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return TrainConfig.from_dict(data)
