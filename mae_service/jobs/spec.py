"""What a pretraining job request may ask for, and the ``TrainConfig`` it resolves to.

A request starts from a recipe (``cpu-demo`` by default, as ``mae train``) and changes a few
fields: model preset, dataset, masking, epochs, batch size, norm-pix, seed, image size, base lr.
Everything is checked before the job is queued, and every problem is reported at once with what
to change. Intervals the request does not set (logging, snapshots, checkpoints) are derived from
the run length, so a short job still shows curves and several snapshots.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from mae_core.errors import InvalidParameterError, UnknownModelError
from mae_core.evaluation.fields import FIELDS as EVAL_FIELDS
from mae_core.fields import FieldSpec
from mae_core.masking import check_strategy
from mae_core.train.config import RECIPES, TrainConfig, get_recipe, merge
from mae_core.train.cost import CostLimits, estimate
from mae_core.train.init import lr_fields, start_architecture
from mae_core.train.fields import (
    FIELDS_BY_NAME,
    MODEL_OVERRIDE_FIELDS,
    check_batch_fits,
    recipe_default,
)
from mae_service.jobs.datasets import Dataset, find_dataset
from mae_service.jobs.store import DEFAULT_MAX_ATTEMPTS, Job, JobStore

PRETRAIN = "pretrain"
DEFAULT_RECIPE = "cpu-demo"
JOB_CKPT_MINUTES = 2.0  # a killed worker loses at most this much training

# Fields of every job kind (what and how many times to try).
DATASET = FieldSpec("dataset", str, "name of a folder of images under a data root "
                    "(GET /api/datasets); find_dataset checks the name", max_length=128)
MAX_ATTEMPTS = FieldSpec("max_attempts", int, "starts before the job is marked failed",
                         minimum=1, maximum=20)
MAX_GPUS = 64
GPUS = FieldSpec("gpus", int, "processes the job trains on, one per GPU (DDP through torchrun; "
                 "gloo processes on a CPU worker); only a worker with this many claims it",
                 minimum=1, maximum=MAX_GPUS, default=1, unit="GPUs")
RECIPE = FieldSpec("recipe", str, "starting point: cpu-demo (small, fast) or paper (Table 8)",
                   default=DEFAULT_RECIPE, max_length=64)
INIT_FROM = dataclasses.replace(
    FIELDS_BY_NAME["init_from"], max_length=256,
    help="checkpoint id (GET /api/models) whose weights the model starts from; "
         "empty: random initialisation")
# A pretraining job: these training fields, plus ``model_overrides`` (MODEL_OVERRIDE_FIELDS).
# Another job kind (an evaluation) adds its own table beside this one in JOB_FIELDS.
PRETRAIN_FIELDS: tuple[FieldSpec, ...] = (
    DATASET, RECIPE, INIT_FROM,
    *(FIELDS_BY_NAME[n] for n in (
        "model", "mask_strategy", "mask_ratio", "epochs", "batch_size", "norm_pix_loss", "seed",
        "img_size", "blr", "lr", "warmup_epochs", "device", "log_every", "snapshot_every",
        "ckpt_every_steps")),
    GPUS, MAX_ATTEMPTS,
)
# Each evaluation kind (knn, linprobe, finetune): its protocol's table, plus max_attempts.
JOB_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    PRETRAIN: PRETRAIN_FIELDS,
    **{kind: (*specs, MAX_ATTEMPTS) for kind, specs in EVAL_FIELDS.items()},
}
FIELDS = tuple(f.name for f in PRETRAIN_FIELDS if f is not MAX_ATTEMPTS) + ("model_overrides",)
# Resolves a checkpoint id to its file (raises UnknownModelError for an id it does not list).
CheckpointResolver = Callable[[str], str]


def _given(params: Mapping[str, Any], name: str, default: Any) -> Any:
    value = params.get(name)
    return default if value is None else value


def field_problems(params: Mapping[str, Any]) -> list[str]:
    """Each given field outside its FieldSpec (type, bounds, choices), and bad model_overrides."""
    problems = []
    for spec in PRETRAIN_FIELDS:
        value = params.get(spec.name)
        if value is not None and value != "" and (problem := spec.problem(value)):
            problems.append(problem)
    overrides = params.get("model_overrides") or {}
    if not isinstance(overrides, Mapping):
        return problems + ["model_overrides must be an object of architecture fields"]
    unknown = sorted(k for k in overrides if k not in MODEL_OVERRIDE_FIELDS)
    if unknown:
        problems.append(f"model_overrides {unknown} not allowed: send positive integers for "
                        f"{', '.join(MODEL_OVERRIDE_FIELDS)}")
    for name in sorted(set(overrides) - set(unknown)):
        problem = FIELDS_BY_NAME[name].problem(overrides[name])
        if problem:
            problems.append(f"model_overrides [{name!r}] not allowed: {problem}")
    return problems


def pretrain_config(params: Mapping[str, Any], dataset: Dataset,
                    checkpoints: CheckpointResolver | None = None,
                    limits: CostLimits | None = None) -> tuple[dict[str, Any], TrainConfig]:
    """Resolve a request into (the request with defaults filled in, the TrainConfig to run).

    The request is checked here, once: field bounds (``PRETRAIN_FIELDS``), the architecture,
    the batch against the dataset, ``init_from`` against ``checkpoints``, and the job's cost
    against ``limits``.

    Raises:
        InvalidParameterError: every problem found, joined, each saying what to change.
    """
    unknown = sorted(set(params) - set(FIELDS))
    if unknown:
        raise InvalidParameterError(f"unknown job fields {unknown}; known fields: {', '.join(FIELDS)}")
    problems = field_problems(params)
    if problems:
        raise InvalidParameterError("; ".join(problems))
    recipe_name = params.get("recipe") or DEFAULT_RECIPE
    recipe = get_recipe(recipe_name)
    notes: list[str] = []

    init_from, init_path = params.get("init_from") or "", ""
    if init_from:
        if checkpoints is None:
            problems.append("init_from is not available here (no checkpoint catalog)")
        else:
            try:
                init_path = checkpoints(init_from)
            except (UnknownModelError, InvalidParameterError) as exc:
                problems.append(f"init_from: {exc}")
    # Starting from a checkpoint, the architecture is the checkpoint's unless the request names
    # a model; then the two must agree (the one rule mae train also follows).
    model = params.get("model") or recipe.model
    img_size = _given(params, "img_size", recipe.data.img_size)
    overrides: dict[str, Any] = {}
    try:
        arch = start_architecture(init_path, recipe, model=params.get("model"),
                                  img_size=params.get("img_size"),
                                  overrides=params.get("model_overrides"),
                                  label=f"init_from {init_from!r}",
                                  leave_out="model and model_overrides")
        model, img_size, overrides = arch.model, arch.img_size, arch.overrides
    except InvalidParameterError as exc:
        problems.append(str(exc))

    epochs = _given(params, "epochs", recipe.epochs)
    batch_size = params.get("batch_size")
    if batch_size is None:
        batch_size = recipe.batch_size
        if not dataset.capped and batch_size > dataset.num_images:
            batch_size = dataset.num_images  # the README's {"dataset", "epochs"} on a small folder
            notes.append(f"batch_size capped to {batch_size}: dataset {dataset.id!r} has only "
                         f"{dataset.num_images} images (the recipe's batch is {recipe.batch_size})")
    elif not dataset.capped:
        try:
            check_batch_fits(batch_size, dataset.num_images, f"dataset {dataset.id!r}")
        except InvalidParameterError as exc:
            problems.append(str(exc))

    gpus = _given(params, "gpus", 1)
    if gpus > 1 and not dataset.capped and batch_size * gpus > dataset.num_images:
        problems.append(f"gpus {gpus} x batch_size {batch_size} is more than the "
                        f"{dataset.num_images} images in dataset {dataset.id!r}: each process needs "
                        "a full batch; use fewer gpus or a smaller batch_size")

    strategy = params.get("mask_strategy") or recipe.mask_strategy
    ratio = _given(params, "mask_ratio", recipe.mask_ratio)
    try:
        check_strategy(strategy, ratio)
    except InvalidParameterError as exc:
        problems.append(str(exc))

    if problems:
        raise InvalidParameterError("; ".join(problems))

    device = params.get("device") or None
    norm_pix = bool(_given(params, "norm_pix_loss", recipe.norm_pix_loss))
    warmup = params.get("warmup_epochs")
    if warmup is None:  # keep the recipe's warmup fraction
        warmup = round(recipe.optim.warmup_epochs * epochs / recipe.epochs, 4)
    optim: dict[str, Any] = {"warmup_epochs": warmup}
    lr, note = lr_fields(params, recipe, from_checkpoint=bool(init_path))  # as mae train
    optim.update(lr)
    if note:
        notes.append(note)

    total = None if dataset.capped else (dataset.num_images // (batch_size * gpus)) * epochs
    changes: dict[str, Any] = {
        "model": model, "model_overrides": overrides, "epochs": epochs, "batch_size": batch_size,
        "mask_strategy": strategy, "mask_ratio": ratio, "norm_pix_loss": norm_pix,
        "seed": _given(params, "seed", recipe.seed), "device": device, "output_dir": "",
        "init_from": init_path,
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
    cost = estimate(config, dataset.num_images)  # a capped count is a lower bound
    over = (limits or CostLimits()).problems(cost)  # the server passes its Settings'
    if over:
        raise InvalidParameterError("; ".join(over))

    resolved = {
        "dataset": dataset.id, "recipe": recipe_name, "model": model, "img_size": img_size,
        "model_overrides": dict(params.get("model_overrides") or {}), "mask_strategy": strategy,
        "mask_ratio": ratio, "epochs": epochs, "batch_size": batch_size, "norm_pix_loss": norm_pix,
        "seed": config.seed, "blr": config.optim.blr, "lr": config.optim.lr,
        "warmup_epochs": warmup, "device": device, "num_images": dataset.num_images,
        "estimated_steps": total, "init_from": init_from or None, "cost": cost.to_dict(),
        "gpus": gpus,
        "notes": notes,
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


FORM_FIELDS = ("model", "epochs", "batch_size", "mask_strategy", "mask_ratio", "norm_pix_loss",
               "img_size", "blr", "lr", "seed", "warmup_epochs")


def recipe_defaults(name: str = DEFAULT_RECIPE) -> dict[str, Any]:
    """The form defaults a recipe implies (for the web form)."""
    recipe = RECIPES[name]
    return {field: recipe_default(field, recipe) for field in FORM_FIELDS}


def form_limits() -> dict[str, dict[str, Any]]:
    """Every pretraining field's bounds, step, unit and help, for the Train form (page-config)."""
    limits = {f.name: f.limits() for f in PRETRAIN_FIELDS}
    limits.update({n: FIELDS_BY_NAME[n].limits() for n in MODEL_OVERRIDE_FIELDS})
    return limits


def submit_pretrain(store: JobStore, roots: Sequence, params: Mapping[str, Any],
                    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                    checkpoints: CheckpointResolver | None = None,
                    limits: CostLimits | None = None) -> Job:
    """Check a pretraining request against the data roots, the checkpoints and the cost limits,
    and queue it."""
    if not params.get("dataset"):
        raise InvalidParameterError("dataset is required: send the name of a folder of images "
                                    "under a data root (GET /api/datasets lists them)")
    dataset = find_dataset(roots, params["dataset"])
    resolved, config = pretrain_config(params, dataset, checkpoints, limits)
    return store.submit(PRETRAIN, resolved, config.to_dict(), max_attempts=max_attempts,
                        gpus=resolved["gpus"])
