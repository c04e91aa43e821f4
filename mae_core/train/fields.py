"""Every user-settable training field, once: name, type, bounds, default, unit, help and where it
lives in a ``TrainConfig``.

``mae train``'s flags, the job request model (``POST /api/jobs``), the Train form's limits and
``TrainConfig.validate`` all derive from ``TRAIN_FIELDS``; a bound is changed here and nowhere
else. Defaults of ``None`` mean "the recipe's value" (see ``recipe_default``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameterError
from ..fields import MASK_RATIO, SEED, FieldSpec

if TYPE_CHECKING:
    from .config import TrainConfig

_STEPS = 10**9  # an interval can be at most this many steps
_WIDTH = 4096  # widest block width (ViT-H is 1280; the cost limits bound the product)

TRAIN_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("data", str, "folder of images (recursive) or ImageFolder root", path="data.path"),
    FieldSpec("val_data", str, "held-out folder for reconstruction snapshots", path="data.val_path"),
    FieldSpec("init_from", str, "checkpoint whose weights the model starts from (continue "
              "pretraining); empty: random initialisation", path="init_from", max_length=4096),
    # Named things (model, strategy, recipe) are checked by their registries, which list the names.
    FieldSpec("model", str, "model preset (see `mae models`)", max_length=64, path="model"),
    FieldSpec("epochs", int, "passes over the data", minimum=1, maximum=10_000, unit="epochs",
              path="epochs"),
    FieldSpec("batch_size", int, "images per step, per process; at most the dataset's size",
              minimum=1, maximum=65_536, unit="images", path="batch_size"),
    FieldSpec("accum_iter", int, "gradient accumulation steps", minimum=1, maximum=4096,
              path="accum_iter"),
    FieldSpec("effective_batch", int, "derive accum_iter to reach this batch (the paper: 4096)",
              minimum=1, maximum=1 << 20, unit="images", path="effective_batch"),
    dataclasses.replace(MASK_RATIO, path="mask_ratio", step=0.05),
    FieldSpec("mask_strategy", str, "how patches are chosen: random, block or grid (grid: always "
              "0.75)", max_length=32, path="mask_strategy"),
    FieldSpec("norm_pix_loss", bool, "regress per-patch normalised pixels (paper default); off: "
              "raw pixels, reconstructions display directly", path="norm_pix_loss"),
    dataclasses.replace(SEED, path="seed", help="random seed of the run (initialisation, data "
                        "order, masks)"),
    FieldSpec("img_size", int, "square input size; a multiple of the patch size", minimum=16,
              maximum=1024, unit="px", path="data.img_size"),
    FieldSpec("blr", float, "base lr; lr = blr * effective_batch / 256", minimum=0.0, maximum=1.0,
              exclusive_minimum=True, path="optim.blr"),
    FieldSpec("lr", float, "absolute lr (overrides blr)", minimum=0.0, maximum=10.0,
              exclusive_minimum=True, path="optim.lr"),
    FieldSpec("min_lr", float, "lr at the end of the cosine", minimum=0.0, maximum=10.0,
              path="optim.min_lr"),
    FieldSpec("weight_decay", float, "AdamW weight decay (paper 0.05)", minimum=0.0, maximum=10.0,
              path="optim.weight_decay"),
    FieldSpec("warmup_epochs", float, "linear warmup length; default keeps the recipe's warmup "
              "fraction", minimum=0.0, maximum=10_000.0, unit="epochs", path="optim.warmup_epochs"),
    FieldSpec("clip_grad", float, "gradient norm clip (paper: none)", minimum=0.0,
              maximum=1e6, exclusive_minimum=True, path="optim.clip_grad"),
    FieldSpec("amp", str, "mixed precision (auto: bf16 on CUDA, fp32 on CPU)",
              choices=("auto", "bf16", "fp16", "off"), path="amp"),
    FieldSpec("device", str, "one of cpu, cuda, cuda:N, mps (or leave it out)",
              pattern=r"cpu|mps|cuda(:\d{1,3})?", path="device"),
    FieldSpec("num_workers", int, "DataLoader workers", minimum=0, maximum=256,
              path="data.num_workers"),
    FieldSpec("cache_px", int, "pre-decode images to this short side in RAM (0: off)", minimum=0,
              maximum=4096, unit="px", path="data.cache_px"),
    FieldSpec("repeats", int, "visit every image this many times per epoch", minimum=1,
              maximum=1000, path="data.repeats"),
    FieldSpec("scale_min", float, "RandomResizedCrop minimum area (paper 0.2)", minimum=0.0,
              maximum=1.0, exclusive_minimum=True, path="data.scale_min"),
    FieldSpec("output_dir", str, "run folder (default runs/<timestamp>)", path="output_dir"),
    FieldSpec("log_every", int, "steps between metrics lines", minimum=1, maximum=_STEPS,
              unit="steps", path="log_every"),
    FieldSpec("snapshot_every", int, "steps between reconstruction snapshots (0: none)", minimum=0,
              maximum=_STEPS, unit="steps", path="snapshot_every"),
    FieldSpec("ckpt_every_steps", int, "steps between checkpoints", minimum=1, maximum=_STEPS,
              unit="steps", path="ckpt_every_steps"),
    FieldSpec("ckpt_every_minutes", float, "minutes between checkpoints", minimum=0.0,
              maximum=10_080.0, exclusive_minimum=True, unit="min", path="ckpt_every_minutes"),
    FieldSpec("keep_last", int, "checkpoints kept", minimum=1, maximum=1000, path="keep_last"),
    FieldSpec("max_steps", int, "run at most this many steps in this invocation, then checkpoint "
              "and stop; --resume continues the schedule (to its end, or for a new --max-steps) "
              "and exports the model when it completes", minimum=1, maximum=_STEPS,
              unit="steps", path="max_steps"),
    # Architecture changes on top of the preset (ModelConfig checks divisibility).
    FieldSpec("patch_size", int, "patch side", minimum=2, maximum=64, unit="px",
              path="model_overrides.patch_size"),
    FieldSpec("embed_dim", int, "encoder width", minimum=8, maximum=_WIDTH,
              path="model_overrides.embed_dim"),
    FieldSpec("depth", int, "encoder blocks", minimum=1, maximum=64, path="model_overrides.depth"),
    FieldSpec("num_heads", int, "encoder attention heads", minimum=1, maximum=64,
              path="model_overrides.num_heads"),
    FieldSpec("decoder_embed_dim", int, "decoder width", minimum=8, maximum=_WIDTH,
              path="model_overrides.decoder_embed_dim"),
    FieldSpec("decoder_depth", int, "decoder blocks", minimum=1, maximum=64,
              path="model_overrides.decoder_depth"),
    FieldSpec("decoder_num_heads", int, "decoder attention heads", minimum=1, maximum=64,
              path="model_overrides.decoder_num_heads"),
)

FIELDS_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in TRAIN_FIELDS}
MODEL_OVERRIDE_FIELDS: tuple[str, ...] = tuple(
    f.name for f in TRAIN_FIELDS if f.path.startswith("model_overrides."))


def field(name: str) -> FieldSpec:
    return FIELDS_BY_NAME[name]


def config_value(config: "TrainConfig", path: str) -> Any:
    """The value at ``path`` ("optim.blr", "model_overrides.depth") of a TrainConfig (None if unset)."""
    node: Any = config
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node


def recipe_default(name: str, recipe: "TrainConfig") -> Any:
    """A field's default under ``recipe`` (the recipe's value; the preset's for an override)."""
    spec = FIELDS_BY_NAME[name]
    value = config_value(recipe, spec.path)
    if value is None and name in MODEL_OVERRIDE_FIELDS:
        from ..presets import get_preset

        value = getattr(get_preset(recipe.model), name)
    return value


def config_problems(config: "TrainConfig") -> list[str]:
    """Every field of ``config`` outside its bounds (unset optional values are fine), plus the
    unknown architecture overrides."""
    problems = []
    unknown = sorted(set(config.model_overrides) - set(MODEL_OVERRIDE_FIELDS))
    if unknown:
        problems.append(f"model_overrides {unknown} not allowed: send positive integers for "
                        f"{', '.join(MODEL_OVERRIDE_FIELDS)}")
    for spec in TRAIN_FIELDS:
        value = config_value(config, spec.path)
        if value is None or (spec.type is str and value == "" and not spec.choices):
            continue
        problem = spec.problem(value)
        if problem:
            problems.append(problem)
    return problems


def check_batch_fits(batch_size: int, num_images: int, where: str = "the dataset") -> None:
    """The one "a step needs a full batch" rule (the job edge and the trainer both use it)."""
    if batch_size > num_images:
        raise InvalidParameterError(
            f"batch_size {batch_size} is larger than the {num_images} images in {where}; "
            f"use a batch size of at most {num_images}")
