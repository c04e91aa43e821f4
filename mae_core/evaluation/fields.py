"""The fields of an evaluation job (k-NN, linear probe, fine-tuning), once: names, types, bounds,
defaults and help. The job API's request model and its checks derive from this table.

Defaults are the protocols' own (``KnnConfig``, ``LinprobeConfig``, ``FinetuneConfig``); a
``None`` default means "the protocol decides" (e.g. fine-tuning's epochs by model size).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import InvalidParameterError
from ..fields import SEED, FieldSpec

PROTOCOLS = ("knn", "linprobe", "finetune")

CHECKPOINT = FieldSpec("checkpoint", str, "checkpoint id to evaluate (GET /api/checkpoints lists them)")
DATASET = FieldSpec("dataset", str, "labelled dataset id: a folder whose sub-folders are classes "
                    "(GET /api/datasets says which are labelled)")
VAL_EVERY = FieldSpec("val_every", int, "without train/ and val/ sub-folders, every n-th image of "
                      "each class (file-name order) is held out for validation", default=5,
                      minimum=2, maximum=100)
DEVICE = FieldSpec("device", str, "cpu, cuda or mps (default: the best available)",
                   choices=("cpu", "cuda", "mps"))
BATCH = FieldSpec("batch_size", int, "images per step", minimum=1, maximum=65_536, unit="images")
POOL = FieldSpec("pool", str, "features: cls token or mean of the patch tokens", choices=("cls", "mean"))
EPOCHS = FieldSpec("epochs", int, "passes over the training split", minimum=1, maximum=10_000, unit="epochs")
BLR = FieldSpec("blr", float, "base lr; lr = blr * batch / 256", minimum=0, maximum=10,
                exclusive_minimum=True)
WARMUP = FieldSpec("warmup_epochs", float, "linear warmup before the cosine decay", minimum=0,
                   maximum=10_000, unit="epochs")

COMMON = (CHECKPOINT, DATASET, VAL_EVERY, DEVICE, SEED)
FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "knn": COMMON + (
        FieldSpec("k", int, "neighbours that vote (DINO: 20; capped at the training images)",
                  default=20, minimum=1, maximum=10_000),
        FieldSpec("temperature", float, "vote weight exp(similarity / T) (DINO: 0.07)",
                  default=0.07, minimum=0, maximum=100, exclusive_minimum=True),
        FieldSpec(POOL.name, str, POOL.help, default="cls", choices=POOL.choices),
        FieldSpec(BATCH.name, int, "images per forward pass", default=64, minimum=1, maximum=4096),
    ),
    "linprobe": COMMON + (
        FieldSpec(EPOCHS.name, int, EPOCHS.help + " (paper: 90)", default=90, minimum=1, maximum=10_000),
        FieldSpec(BATCH.name, int, BATCH.help, default=256, minimum=1, maximum=65_536),
        FieldSpec(BLR.name, float, BLR.help + " (paper: 0.1, LARS)", default=0.1, minimum=0,
                  maximum=10, exclusive_minimum=True),
        FieldSpec(WARMUP.name, float, WARMUP.help, default=10.0, minimum=0, maximum=10_000),
        FieldSpec("optimizer", str, "lars (the paper's; its trust ratio moves a fresh head "
                  "slowly, so tiny datasets need many steps) or sgd (momentum 0.9)",
                  default="lars", choices=("lars", "sgd")),
        FieldSpec("mode", str, "fast: cached centre-crop features; paper: augmented crops every epoch",
                  default="fast", choices=("fast", "paper")),
        FieldSpec(POOL.name, str, POOL.help, default="cls", choices=POOL.choices),
    ),
    "finetune": COMMON + (
        FieldSpec(EPOCHS.name, int, EPOCHS.help + " (default by model size: ViT-B 100)", minimum=1,
                  maximum=10_000),
        FieldSpec(BATCH.name, int, BATCH.help + " (even when mixup/cutmix are on)", default=64,
                  minimum=1, maximum=65_536),
        FieldSpec(BLR.name, float, BLR.help + " (default by model size)", minimum=0, maximum=10,
                  exclusive_minimum=True),
        FieldSpec(WARMUP.name, float, WARMUP.help, default=5.0, minimum=0, maximum=10_000),
        FieldSpec("tune_blocks", int, "partial fine-tuning (Figure 9): train only the last K "
                  "blocks (0 = the head alone); leave out to train everything", minimum=0, maximum=128),
        FieldSpec("layer_decay", float, "layer-wise lr decay (default by model size)", minimum=0,
                  maximum=1, exclusive_minimum=True),
        FieldSpec("drop_path", float, "stochastic depth rate (default by model size)", minimum=0,
                  maximum=1, exclusive_maximum=True),
        FieldSpec("mixup", float, "mixup alpha (0 = off)", default=0.8, minimum=0, maximum=10),
        FieldSpec("cutmix", float, "cutmix alpha (0 = off)", default=1.0, minimum=0, maximum=10),
        FieldSpec("smoothing", float, "label smoothing", default=0.1, minimum=0, maximum=1,
                  exclusive_maximum=True),
        FieldSpec("aa", str, "timm RandAugment policy ('' = off)", default="rand-m9-mstd0.5-inc1"),
        FieldSpec("reprob", float, "random erasing probability", default=0.25, minimum=0, maximum=1),
        FieldSpec(POOL.name, str, POOL.help + " (fine-tuning default: mean)", default="mean",
                  choices=POOL.choices),
    ),
}


def all_field_names() -> list[str]:
    return sorted({f.name for specs in FIELDS.values() for f in specs})


def resolve_eval_fields(protocol: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` checked against ``protocol``'s fields, defaults filled in (None left out).

    Raises:
        InvalidParameterError: every problem at once, each naming the field and what to send.
    """
    if protocol not in FIELDS:
        raise InvalidParameterError(f"unknown evaluation protocol {protocol!r}; choose one of "
                                    f"{', '.join(PROTOCOLS)}")
    specs = {f.name: f for f in FIELDS[protocol]}
    problems = [f"{name} is not a {protocol} field; {protocol} takes: {', '.join(specs)}"
                for name in sorted(set(params) - set(specs)) if params[name] is not None]
    resolved: dict[str, Any] = {}
    for name, spec in specs.items():
        value = params.get(name)
        if value is None:
            if name in (CHECKPOINT.name, DATASET.name):
                problems.append(f"{name} is required: {spec.help}")
            elif spec.default is not None:
                resolved[name] = spec.default
            continue
        problem = spec.problem(value)
        if problem:
            problems.append(problem)
        else:
            resolved[name] = float(value) if spec.type is float else value
    if problems:
        raise InvalidParameterError("; ".join(problems))
    return resolved
