"""Reconstruction-quality benchmark: an MAE against non-learned baselines on identical masks.

For every image, mask ratio and masking strategy, the reconstructor masks the image once; that
very mask (``rec.mask``) is then given to the baselines, so all methods fill the same holes.
Errors are measured in pixel space on [0, 255], over removed patches only:

- ``masked_mse``: mean over images of the per-image masked MSE;
- ``psnr_mean``: mean over images of the per-image PSNR (peak 255) — what a typical image gets;
- ``psnr_of_mean_mse``: ``10 log10(255² / masked_mse)`` — the PSNR of the pooled error, which
  large failures pull down more.

Methods: ``mae`` (``rec.pasted`` against ``rec.original``: visible patches are pasted back, so
only the removed ones differ), ``mean_fill`` and ``telea`` (see ``baselines``).

Grid masking keeps one patch of every 2x2 cell, so it exists only at ratio 0.75; other ratios
are skipped for it and listed under ``skipped``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from mae_core.errors import InvalidParameterError
from mae_core.masking import GRID_RATIO
from mae_core.metrics import psnr
from mae_tools.bench.baselines import masked_patch_metrics, mean_fill, telea_inpaint

logger = logging.getLogger(__name__)

METHODS = ("mae", "mean_fill", "telea")
DEFAULT_RATIOS = (0.5, 0.75, 0.9)
DEFAULT_STRATEGIES = ("random", "block", "grid")


class _Reconstruction(Protocol):
    original: np.ndarray
    reconstruction: np.ndarray
    pasted: np.ndarray
    mask: np.ndarray


class SupportsReconstruct(Protocol):
    """What the benchmark needs from a reconstructor (``mae_core.reconstruct.Reconstructor``)."""

    patch_size: int

    def reconstruct(
        self, image: Image.Image, *, mask_ratio: float, strategy: str, seed: int
    ) -> _Reconstruction: ...


def _baselines(telea_radius: float) -> dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]]:
    return {
        "mean_fill": mean_fill,
        "telea": lambda img, mask, p: telea_inpaint(img, mask, p, radius=telea_radius),
    }


def _cells(ratios: Sequence[float], strategies: Sequence[str]) -> tuple[list, list]:
    cells, skipped = [], []
    for ratio in ratios:
        for strategy in strategies:
            if strategy == "grid" and not math.isclose(ratio, GRID_RATIO):
                skipped.append(
                    {
                        "ratio": ratio,
                        "strategy": strategy,
                        "reason": f"grid masking only exists at ratio {GRID_RATIO}",
                    }
                )
                continue
            cells.append((float(ratio), strategy))
    return cells, skipped


def _finite(x: float) -> float | None:
    """JSON has no infinity: a perfect reconstruction's PSNR is stored as null."""
    return float(x) if math.isfinite(x) else None


def _summarise(mses: list[float]) -> dict[str, Any]:
    psnrs = [psnr(m) for m in mses]
    finite = [p for p in psnrs if math.isfinite(p)]
    mean_mse = float(np.mean(mses)) if mses else float("nan")
    return {
        "masked_mse": _finite(mean_mse),
        "psnr_mean": _finite(float(np.mean(finite))) if finite else None,
        "psnr_of_mean_mse": _finite(psnr(mean_mse)) if mses else None,
        "n_perfect": len(psnrs) - len(finite),  # images with zero error (excluded from psnr_mean)
    }


def _load(path: Path) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except Exception as exc:  # noqa: BLE001 - a broken file is skipped and reported
        logger.warning("skipping %s: cannot read image (%s)", path, exc)
        return None


def run_quality_benchmark(
    reconstructor: SupportsReconstruct,
    image_paths: Iterable[str | Path],
    ratios: Sequence[float] = DEFAULT_RATIOS,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    seed: int = 0,
    *,
    telea_radius: float = 5.0,
) -> dict[str, Any]:
    """Masked-patch MSE/PSNR of the MAE and the baselines on the same masks.

    Args:
        reconstructor: object with ``patch_size`` and ``reconstruct(image, mask_ratio=...,
            strategy=..., seed=...)`` returning ``original``, ``reconstruction``, ``pasted``
            (uint8 [H, W, 3]) and ``mask`` ([h, w], 1 = removed).
        image_paths: images to evaluate (unreadable ones are skipped and listed).
        ratios: mask ratios.
        strategies: masking strategies; ``grid`` only runs at ratio 0.75.
        seed: base seed; image ``i`` is masked with seed ``seed + i`` for every cell.
        telea_radius: inpainting radius for the Telea baseline, in pixels.

    Returns:
        A JSON-serialisable dict: ``meta`` (n_images, seed, checkpoint, date, versions, ...),
        ``rows`` (one per ratio/strategy, with a summary per method) and ``skipped``.

    Raises:
        InvalidParameterError: no readable image, or nothing to run.
    """
    import torch

    paths = [Path(p) for p in image_paths]
    cells, skipped = _cells(ratios, strategies)
    if not cells:
        raise InvalidParameterError(
            f"nothing to benchmark for ratios {list(ratios)} and strategies {list(strategies)}"
        )
    patch = int(reconstructor.patch_size)
    baselines = _baselines(telea_radius)
    mses: dict[tuple[float, str], dict[str, list[float]]] = {
        cell: {m: [] for m in METHODS} for cell in cells
    }
    used, unreadable = [], []
    uses_target_stats = False
    for i, path in enumerate(tqdm(paths, desc="quality bench", unit="img")):
        image = _load(path)
        if image is None:
            unreadable.append(str(path))
            continue
        used.append(str(path))
        for ratio, strategy in cells:
            rec = reconstructor.reconstruct(
                image, mask_ratio=ratio, strategy=strategy, seed=seed + i
            )
            uses_target_stats |= bool(getattr(rec, "uses_target_stats", False))
            target = np.asarray(rec.original, dtype=np.uint8)
            mask = np.asarray(rec.mask)
            preds = {"mae": np.asarray(rec.pasted, dtype=np.uint8)}
            for name, fill in baselines.items():
                preds[name] = fill(target, mask, patch)
            for name, pred in preds.items():
                mses[(ratio, strategy)][name].append(
                    masked_patch_metrics(pred, target, mask, patch)["masked_mse"]
                )
    if not used:
        raise InvalidParameterError(
            f"none of the {len(paths)} images could be read; pass readable image files"
        )

    rows = [
        {
            "ratio": ratio,
            "strategy": strategy,
            "n_images": len(used),
            "methods": {m: _summarise(mses[(ratio, strategy)][m]) for m in METHODS},
        }
        for ratio, strategy in cells
    ]
    return {
        "meta": {
            "benchmark": "masked-patch reconstruction quality",
            "space": "pixels, [0, 255], removed patches only; PSNR peak 255",
            "n_images": len(used),
            "seed": seed,
            "checkpoint": getattr(reconstructor, "name", None),
            "patch_size": patch,
            "ratios": [float(r) for r in ratios],
            "strategies": list(strategies),
            "telea_radius": telea_radius,
            "uses_target_stats": uses_target_stats,
            "images": used,
            "unreadable_images": unreadable,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "torch_version": torch.__version__,
            "numpy_version": np.__version__,
            "opencv_version": _opencv_version(),
        },
        "rows": rows,
        "skipped": skipped,
    }


def _opencv_version() -> str | None:
    try:
        import cv2
    except ImportError:
        return None
    return str(cv2.__version__)


def _fmt(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of a ``run_quality_benchmark`` result, one line per method."""
    meta = result["meta"]
    head = (
        f"Masked-patch reconstruction quality ({meta.get('space', 'pixels')})\n"
        f"checkpoint: {meta.get('checkpoint') or '-'}   images: {meta['n_images']}   "
        f"seed: {meta['seed']}   patch: {meta.get('patch_size', '-')}"
    )
    rows = [("ratio", "strategy", "method", "masked MSE", "PSNR mean", "PSNR(mean MSE)", "vs mean")]
    for row in result["rows"]:
        base = row["methods"]["mean_fill"]["psnr_of_mean_mse"]
        for k, (method, s) in enumerate(row["methods"].items()):
            gain = s["psnr_of_mean_mse"]
            delta = "-" if gain is None or base is None else f"{gain - base:+.2f} dB"
            rows.append(
                (
                    f"{row['ratio']:.2f}" if k == 0 else "",
                    row["strategy"] if k == 0 else "",
                    method,
                    _fmt(s["masked_mse"], 1),
                    _fmt(s["psnr_mean"], 2),
                    _fmt(s["psnr_of_mean_mse"], 2),
                    delta,
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [head, ""]
    for j, r in enumerate(rows):
        lines.append(
            "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    for s in result.get("skipped", []):
        lines.append(f"skipped: ratio {s['ratio']} / {s['strategy']}: {s['reason']}")
    if meta.get("uses_target_stats"):
        lines.append(
            "note: norm-pix model un-normalised with each patch's true mean/std (uses target "
            "statistics), which flatters 'mae' against the baselines"
        )
    return "\n".join(lines)


def save_result(result: dict[str, Any], path: str | Path) -> None:
    """Write a benchmark result as JSON, atomically."""
    from mae_core.io_utils import write_json_atomic

    write_json_atomic(path, result)
