"""What a pretraining job request may ask for, and the ``TrainConfig`` it resolves to.

A request starts from a recipe (``cpu-demo`` by default, as ``mae train``) and changes a few
fields: model preset, dataset, masking, epochs, batch size, norm-pix, seed, image size, base lr.
Everything is checked before the job is queued, and every problem is reported at once with what
to change. Intervals the request does not set (logging, snapshots, checkpoints) are derived from
the run length, so a short job still shows curves and several snapshots.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from mae_core.errors import InvalidParameterError, UnknownModelError
from mae_core.masking import check_strategy
from mae_core.presets import get_preset, list_presets
from mae_core.train.config import RECIPES, TrainConfig, get_recipe, merge
from mae_service.jobs.datasets import Dataset, find_dataset
from mae_service.jobs.store import DEFAULT_MAX_ATTEMPTS, Job, JobStore

PRETRAIN = "pretrain"
DEFAULT_RECIPE = "cpu-demo"
MODEL_OVERRIDE_FIELDS = ("patch_size", "embed_dim", "depth", "num_heads", "decoder_embed_dim",
                         "decoder_depth", "decoder_num_heads")
DEVICE_PATTERN = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
JOB_CKPT_MINUTES = 2.0  # a killed worker loses at most this much training
FIELDS = ("dataset", "recipe", "model", "mask_strategy", "mask_ratio", "epochs", "batch_size",
          "norm_pix_loss", "seed", "img_size", "blr", "warmup_epochs", "device", "model_overrides",
          "log_every", "snapshot_every", "ckpt_every_steps")


def _given(params: Mapping[str, Any], name: str, default: Any) -> Any:
    value = params.get(name)
    return default if value is None else value


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def pretrain_config(params: Mapping[str, Any], dataset: Dataset) -> tuple[dict[str, Any], TrainConfig]:
    """Resolve a request into (the request with defaults filled in, the TrainConfig to run).

    Raises:
        InvalidParameterError: every problem found, joined, each saying what to change.
    """
    unknown = sorted(set(params) - set(FIELDS))
    if unknown:
        raise InvalidParameterError(f"unknown job fields {unknown}; known fields: {', '.join(FIELDS)}")
    recipe_name = params.get("recipe") or DEFAULT_RECIPE
    recipe = get_recipe(recipe_name)
    problems: list[str] = []

    model = params.get("model") or recipe.model
    img_size = _given(params, "img_size", recipe.data.img_size)
    overrides = {**recipe.model_overrides, **(params.get("model_overrides") or {})}
    bad = sorted(k for k, v in overrides.items() if k not in MODEL_OVERRIDE_FIELDS or not _positive_int(v))
    if bad:
        problems.append(f"model_overrides {bad} not allowed: send positive integers for "
                        f"{', '.join(MODEL_OVERRIDE_FIELDS)}")
    elif not _positive_int(img_size):
        problems.append(f"img_size must be a positive number of pixels, not {img_size!r}")
    elif model not in list_presets():
        problems.append(f"unknown model preset {model!r}; choose one of {', '.join(list_presets())}")
    else:
        try:
            get_preset(model, img_size=img_size, **overrides)
        except (InvalidParameterError, UnknownModelError) as exc:
            problems.append(f"model {model} at {img_size} px: {exc}")

    epochs = _given(params, "epochs", recipe.epochs)
    batch_size = _given(params, "batch_size", recipe.batch_size)
    if not (_positive_int(epochs) and _positive_int(batch_size)):
        problems.append("epochs and batch_size must be positive integers")
    elif not dataset.capped and batch_size > dataset.num_images:
        problems.append(f"batch_size {batch_size} is larger than the {dataset.num_images} images "
                        f"in dataset {dataset.id!r}; use a batch size of at most {dataset.num_images}")

    strategy = params.get("mask_strategy") or recipe.mask_strategy
    ratio = _given(params, "mask_ratio", recipe.mask_ratio)
    try:
        check_strategy(strategy, ratio)
    except InvalidParameterError as exc:
        problems.append(str(exc))

    device = params.get("device") or None
    if device is not None and not DEVICE_PATTERN.match(device):
        problems.append(f"device {device!r} is not one of cpu, cuda, cuda:N, mps (or leave it out)")
    for name in ("log_every", "snapshot_every", "ckpt_every_steps"):
        if params.get(name) is not None and not _positive_int(params[name]):
            problems.append(f"{name} must be a positive integer")
    if problems:
        raise InvalidParameterError("; ".join(problems))

    norm_pix = bool(_given(params, "norm_pix_loss", recipe.norm_pix_loss))
    warmup = params.get("warmup_epochs")
    if warmup is None:  # keep the recipe's warmup fraction
        warmup = round(recipe.optim.warmup_epochs * epochs / recipe.epochs, 4)
    optim: dict[str, Any] = {"warmup_epochs": warmup}
    if params.get("blr") is not None:
        optim.update(blr=params["blr"], lr=None)

    total = None if dataset.capped else (dataset.num_images // batch_size) * epochs
    changes: dict[str, Any] = {
        "model": model, "model_overrides": overrides, "epochs": epochs, "batch_size": batch_size,
        "mask_strategy": strategy, "mask_ratio": ratio, "norm_pix_loss": norm_pix,
        "seed": int(_given(params, "seed", recipe.seed)), "device": device, "output_dir": "",
        "data": {"path": str(dataset.path), "img_size": img_size,
                 "cache_px": 0 if dataset.capped else recipe.data.cache_px},
        "optim": optim,
        "ckpt_every_minutes": min(recipe.ckpt_every_minutes, JOB_CKPT_MINUTES),
        **_intervals(total, recipe),
    }
    for name in ("log_every", "snapshot_every", "ckpt_every_steps"):
        if params.get(name) is not None:
            changes[name] = params[name]
    config = merge(recipe, changes)
    config.validate()

    resolved = {
        "dataset": dataset.id, "recipe": recipe_name, "model": model, "img_size": img_size,
        "model_overrides": dict(params.get("model_overrides") or {}), "mask_strategy": strategy,
        "mask_ratio": ratio, "epochs": epochs, "batch_size": batch_size, "norm_pix_loss": norm_pix,
        "seed": config.seed, "blr": config.optim.blr, "lr": config.optim.lr,
        "warmup_epochs": warmup, "device": device, "num_images": dataset.num_images,
        "estimated_steps": total,
    }
    return resolved, config


def _intervals(total: int | None, recipe: TrainConfig) -> dict[str, int]:
    """Logging, snapshot and checkpoint intervals for a run of ``total`` steps (None: unknown)."""
    if not total:
        return {"log_every": recipe.log_every, "snapshot_every": recipe.snapshot_every,
                "ckpt_every_steps": recipe.ckpt_every_steps}
    return {
        "log_every": max(1, min(recipe.log_every, total // 100)),  # about 100 points per curve
        "snapshot_every": max(1, total // 8),
        "ckpt_every_steps": max(1, min(recipe.ckpt_every_steps, total // 20)),
    }


def recipe_defaults(name: str = DEFAULT_RECIPE) -> dict[str, Any]:
    """The form defaults a recipe implies (for the web form)."""
    recipe = RECIPES[name]
    return {"model": recipe.model, "epochs": recipe.epochs, "batch_size": recipe.batch_size,
            "mask_strategy": recipe.mask_strategy, "mask_ratio": recipe.mask_ratio,
            "norm_pix_loss": recipe.norm_pix_loss, "img_size": recipe.data.img_size,
            "blr": recipe.optim.blr, "lr": recipe.optim.lr, "seed": recipe.seed}


def submit_pretrain(store: JobStore, roots: Sequence, params: Mapping[str, Any],
                    max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Job:
    """Check a pretraining request against the data roots and queue it."""
    if not params.get("dataset"):
        raise InvalidParameterError("dataset is required: send the name of a folder of images "
                                    "under a data root (GET /api/datasets lists them)")
    dataset = find_dataset(roots, params["dataset"])
    resolved, config = pretrain_config(params, dataset)
    return store.submit(PRETRAIN, resolved, config.to_dict(), max_attempts=max_attempts)
