"""Reconstruction-quality benchmark: baselines on synthetic images and the runner on a fake model."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mae_tools.bench import baselines as B
from mae_tools.bench.quality import format_table, run_quality_benchmark, save_result
from mae_core.errors import InvalidParameterError

P = 8  # patch size for the synthetic tests


def gradient_image(h: int = 64, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([40 + 2.5 * x, 60 + 2.0 * y, 100 + 1.2 * (x + y) / 2], axis=-1)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def checker_mask(h: int = 8, w: int = 8) -> np.ndarray:
    """Interior patches removed in a checker pattern: every hole has a visible border."""
    mask = np.zeros((h, w), np.uint8)
    mask[1:-1, 1:-1] = (np.add.outer(np.arange(h - 2), np.arange(w - 2)) % 2 == 0)
    return mask


# --- baselines ---------------------------------------------------------------------------------


def test_mean_fill_two_colour_image_gets_the_exact_mean():
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :16] = (200, 0, 50)
    img[:, 16:] = (0, 100, 250)
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = mask[0, 3] = 1  # one patch from each half: visible pixels stay balanced
    out = B.mean_fill(img, mask, P)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert tuple(out[2, 2]) == (100, 50, 150)
    assert tuple(out[2, 29]) == (100, 50, 150)
    pixel_mask = B.expand_mask(mask, P)
    assert np.array_equal(out[~pixel_mask], img[~pixel_mask])  # visible pixels untouched
    assert np.array_equal(B.mean_fill(img, np.zeros((4, 4)), P), img)
    assert np.all(B.mean_fill(img, np.ones((4, 4)), P) == 128)  # nothing visible: mid-grey


def test_telea_fills_a_smooth_gradient_much_better_than_mean_fill():
    img = gradient_image()
    mask = checker_mask()
    telea = B.telea_inpaint(img, mask, P, radius=5)
    mean = B.mean_fill(img, mask, P)
    assert telea.dtype == np.uint8 and telea.shape == img.shape
    pixel_mask = B.expand_mask(mask, P)
    assert np.array_equal(telea[~pixel_mask], img[~pixel_mask])
    m_telea = B.masked_patch_metrics(telea, img, mask, P)
    m_mean = B.masked_patch_metrics(mean, img, mask, P)
    assert m_telea["masked_mse"] < 25  # within a few grey levels on a smooth ramp
    assert m_telea["masked_mse"] * 20 < m_mean["masked_mse"]
    assert m_telea["masked_psnr"] > m_mean["masked_psnr"] + 10


def test_baselines_reject_mismatched_shapes():
    with pytest.raises(InvalidParameterError):
        B.mean_fill(gradient_image(64, 64), np.zeros((4, 4)), P)  # grid is 32x32, image 64x64
    with pytest.raises(InvalidParameterError):
        B.telea_inpaint(gradient_image().astype(np.float32), checker_mask(), P)


def test_metrics_zero_error_and_known_constant_error():
    img = gradient_image()
    mask = checker_mask()
    perfect = B.masked_patch_metrics(img, img, mask, P)
    assert perfect["masked_mse"] == 0.0 and perfect["masked_psnr"] == math.inf
    off = img.astype(np.int16)
    off[B.expand_mask(mask, P)] += 10  # error 10 on every channel of removed patches only
    m = B.masked_patch_metrics(off.astype(np.uint8), img, mask, P)
    assert m["masked_mse"] == pytest.approx(100.0)
    assert m["masked_psnr"] == pytest.approx(10 * math.log10(255**2 / 100))  # 28.13 dB
    assert m["visible_mse"] == 0.0
    empty = B.masked_patch_metrics(off.astype(np.uint8), img, np.zeros((8, 8)), P)
    assert empty["masked_mse"] == 0.0 and empty["masked_psnr"] == math.inf


# --- benchmark runner --------------------------------------------------------------------------


@dataclass
class FakeRec:
    original: np.ndarray
    reconstruction: np.ndarray
    pasted: np.ndarray
    mask: np.ndarray


class MeanFillReconstructor:
    """Test double for the reconstructor contract: its 'model' is mean fill on a seeded mask."""

    patch_size = P
    name = "fake-mean-fill"

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.calls: list[tuple[float, str, int]] = []

    def reconstruct(self, image, *, mask_ratio, strategy, seed):
        self.calls.append((mask_ratio, strategy, seed))
        original = np.asarray(image.convert("RGB").resize((self.size, self.size)))
        g = self.size // P
        rng = np.random.default_rng(seed)
        mask = np.zeros(g * g, np.uint8)
        mask[rng.permutation(g * g)[: int(round(g * g * mask_ratio))]] = 1
        mask = mask.reshape(g, g)
        filled = B.mean_fill(original, mask, P)
        return FakeRec(original, filled, filled, mask)


def write_images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        arr = np.clip(gradient_image() + rng.normal(0, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
        path = folder / f"img{i}.png"
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


def test_benchmark_mae_row_equals_mean_fill_when_the_model_is_mean_fill(tmp_path):
    paths = write_images(tmp_path, 3)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    rec = MeanFillReconstructor()
    result = run_quality_benchmark(rec, [*paths, tmp_path / "broken.jpg"], seed=7)

    json.loads(json.dumps(result, allow_nan=False))  # strictly JSON-serialisable
    meta = result["meta"]
    assert meta["n_images"] == 3 and meta["seed"] == 7
    assert meta["checkpoint"] == "fake-mean-fill" and meta["torch_version"]
    assert meta["unreadable_images"] == [str(tmp_path / "broken.jpg")]

    cells = [(r["ratio"], r["strategy"]) for r in result["rows"]]
    assert cells == [
        (0.5, "random"), (0.5, "block"),
        (0.75, "random"), (0.75, "block"), (0.75, "grid"),
        (0.9, "random"), (0.9, "block"),
    ]  # fmt: skip
    assert {(s["ratio"], s["strategy"]) for s in result["skipped"]} == {(0.5, "grid"), (0.9, "grid")}
    # Every image gets the same seed in every cell, so masks are replayable.
    assert {seed for _, _, seed in rec.calls} == {7, 8, 9}
    assert len(rec.calls) == 3 * len(cells)

    for row in result["rows"]:
        mae, mean, telea = (row["methods"][m] for m in ("mae", "mean_fill", "telea"))
        assert mae == mean  # same mask, same fill: identical numbers
        assert telea["masked_mse"] != mean["masked_mse"]
        assert row["n_images"] == 3
        assert mae["psnr_of_mean_mse"] == pytest.approx(10 * math.log10(255**2 / mae["masked_mse"]))
        # PSNR of the mean MSE never exceeds the mean per-image PSNR (Jensen).
        assert mae["psnr_of_mean_mse"] <= mae["psnr_mean"] + 1e-9
    # More masking, larger error for the mean-fill model.
    by_cell = {(r["ratio"], r["strategy"]): r["methods"]["mae"]["masked_mse"] for r in result["rows"]}
    assert by_cell[(0.9, "random")] > 0

    table = format_table(result)
    assert "fake-mean-fill" in table and "telea" in table and "mean_fill" in table
    assert "+0.00 dB" in table  # mae vs mean fill
    assert "skipped: ratio 0.5 / grid" in table

    out = tmp_path / "results" / "quality.json"
    save_result(result, out)
    assert json.loads(out.read_text())["rows"] == result["rows"]


def test_benchmark_perfect_reconstruction_is_json_safe(tmp_path):
    class Perfect(MeanFillReconstructor):
        def reconstruct(self, image, *, mask_ratio, strategy, seed):
            rec = super().reconstruct(image, mask_ratio=mask_ratio, strategy=strategy, seed=seed)
            return FakeRec(rec.original, rec.original, rec.original.copy(), rec.mask)

    result = run_quality_benchmark(Perfect(), write_images(tmp_path, 2), ratios=(0.75,),
                                   strategies=("random",))
    mae = result["rows"][0]["methods"]["mae"]
    assert mae["masked_mse"] == 0.0
    assert mae["psnr_mean"] is None and mae["psnr_of_mean_mse"] is None and mae["n_perfect"] == 2
    json.dumps(result, allow_nan=False)
    assert "-" in format_table(result)


def test_benchmark_errors_are_clear(tmp_path):
    with pytest.raises(InvalidParameterError, match="could be read"):
        run_quality_benchmark(MeanFillReconstructor(), [tmp_path / "missing.png"])
    with pytest.raises(InvalidParameterError, match="nothing to benchmark"):
        run_quality_benchmark(MeanFillReconstructor(), write_images(tmp_path, 1), ratios=(0.5,),
                              strategies=("grid",))


def test_benchmark_runs_against_the_real_reconstructor(tmp_path):
    """The contract holds for mae_core's own Reconstructor (tiny untrained model, CPU)."""
    import torch

    from mae_core.model import MaskedAutoencoderViT
    from mae_core.presets import get_preset
    from mae_core.reconstruct import Reconstructor

    torch.manual_seed(0)
    model = MaskedAutoencoderViT(get_preset("mae_vit_tiny_patch16", img_size=(64, 64)))
    rec = Reconstructor(model, device="cpu", name="tiny-untrained")
    result = run_quality_benchmark(
        rec, write_images(tmp_path, 1), ratios=(0.75,), strategies=("random", "grid"), seed=1
    )
    assert result["meta"]["patch_size"] == 16 and result["meta"]["checkpoint"] == "tiny-untrained"
    assert [r["strategy"] for r in result["rows"]] == ["random", "grid"]
    for row in result["rows"]:
        assert all(row["methods"][m]["masked_mse"] > 0 for m in ("mae", "mean_fill", "telea"))
    json.dumps(result, allow_nan=False)
