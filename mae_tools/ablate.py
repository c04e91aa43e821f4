"""Small-scale ablations: sweep one factor of the paper's Table 1 / Figure 5 with ``mae train``.

Each value trains a short run (the same base config otherwise), then is scored on held-out images
with a fixed protocol — the model's own objective under 75% random masking — and, when labelled
folders are given, by a linear probe. Results go to ``bench-results/ablations/<factor>.json``,
which the analysis page draws beside the paper's curve.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch

from mae_core.checkpoint import load_model
from mae_core.errors import InvalidParameterError
from mae_core.masking import make_generator, mask_scores
from mae_core.reconstruct import pick_device
from mae_core.results import ABLATION_FACTORS, ablation_result, machine_meta
from mae_core.train import TrainConfig, Trainer
from mae_core.train.data import ImageFolderDataset

log = logging.getLogger(__name__)

EVAL_RATIO = 0.75

# factor -> default values; each value maps to TrainConfig changes in `changes_for`
FACTORS: dict[str, list[Any]] = {
    "mask_ratio": [0.25, 0.5, 0.75, 0.9],
    "strategy": ["random 75%", "block 50%", "block 75%", "grid 75%"],
    "decoder_depth": [1, 2, 4, 8],
    "norm_pix": [True, False],
}
assert tuple(FACTORS) == ABLATION_FACTORS, "one list of factors: mae_core.results"


def changes_for(factor: str, value: Any, base: TrainConfig) -> dict[str, Any]:
    if factor == "mask_ratio":
        return {"mask_ratio": float(value)}
    if factor == "strategy":
        name, _, pct = str(value).partition(" ")
        return {"mask_strategy": name, "mask_ratio": float(pct.rstrip("%")) / 100 if pct else 0.75}
    if factor == "decoder_depth":
        return {"model_overrides": {**base.model_overrides, "decoder_depth": int(value)}}
    if factor == "norm_pix":
        truthy = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        return {"norm_pix_loss": truthy}
    raise InvalidParameterError(f"unknown factor {factor!r}; choose one of {', '.join(FACTORS)}")


@torch.no_grad()
def heldout_loss(model, folder: str | Path, img_size: int, seed: int = 0, batch_size: int = 16) -> float:
    """Mean objective on centre crops of ``folder`` under 75% random masks fixed by ``seed``."""
    dataset = ImageFolderDataset(folder, img_size=img_size, augment=False, progress=False)
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        imgs = torch.stack([x for x in items if x is not None])
        noise = mask_scores("random", imgs.shape[0], model.config.grid_size, EVAL_RATIO,
                            make_generator(seed + start))
        total += model(imgs, mask_ratio=EVAL_RATIO, noise=noise).loss.item() * imgs.shape[0]
        count += imgs.shape[0]
    return total / max(count, 1)


def run_ablation(
    factor: str,
    base: TrainConfig,
    heldout: str | Path,
    values: Sequence[Any] | None = None,
    runs_root: str | Path = "runs",
    probe: tuple[str, str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one short run per value of ``factor`` and score it; returns the result dict."""
    values = list(values if values is not None else FACTORS.get(factor, []))
    if factor not in FACTORS:
        raise InvalidParameterError(f"unknown factor {factor!r}; choose one of {', '.join(FACTORS)}")
    rows = []
    for value in values:
        tag = str(value).replace(" ", "").replace("%", "pct")
        config = base.replace(**changes_for(factor, value, base),
                              output_dir=str(Path(runs_root) / f"ablate-{factor}-{tag}"))
        log.info("ablation %s = %s -> %s", factor, value, config.output_dir)
        result = Trainer(config, progress=progress).run()
        model = load_model(result.export_path)
        row: dict[str, Any] = {"value": value, "recon_loss": heldout_loss(model, heldout, config.data.img_size),
                               "train_loss": result.final_loss, "run": Path(config.output_dir).name}
        if probe:
            from mae_core.evaluation import LinprobeConfig, linear_probe

            probe_result = linear_probe(LinprobeConfig(train_dir=probe[0], val_dir=probe[1],
                                                       optimizer="sgd", lr=0.05, epochs=30,
                                                       batch_size=64, warmup_epochs=3,
                                                       device=config.device), model=model)
            row["linprobe_acc"] = probe_result["top1"]
        rows.append(row)
    meta = {**machine_meta(pick_device(base.device)), "model": base.model, "dataset": str(base.data.path), "img_size": base.data.img_size,
            "epochs": base.epochs, "batch_size": base.batch_size, "heldout": str(heldout),
            "recon_loss": "the model's own objective on held-out centre crops, 75% random masks "
                          "(norm-pix and pixel targets are not on one scale)"}
    return ablation_result(factor, meta, rows)
