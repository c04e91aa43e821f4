import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mae_core import InvalidParameterError, Reconstructor, create_model
from mae_cli import main


def test_reconstruction_panels_mask_and_metrics(tiny_model, photo):
    r = Reconstructor(tiny_model, device="cpu")
    rec = r.reconstruct(photo, mask_ratio=0.75, seed=5)
    for panel in rec.panels.values():
        assert panel.shape == (64, 64, 3) and panel.dtype == np.uint8
    assert rec.mask.shape == (4, 4) and rec.mask.sum() == 12
    assert rec.error_map.shape == (4, 4)
    m = rec.metrics
    assert {"masked_mse", "masked_psnr", "visible_mse", "inference_ms"} <= set(m)
    # visible patches of the pasted panel are the original's
    vis = np.kron(1 - rec.mask, np.ones((16, 16), dtype=np.uint8)).astype(bool)
    assert np.array_equal(rec.pasted[vis], rec.original[vis])
    assert rec.seed == 5 and not rec.uses_target_stats


def test_same_seed_same_result_and_batch_equals_single(tiny_model, photo):
    r = Reconstructor(tiny_model, device="cpu")
    a, b = r.reconstruct(photo, seed=1), r.reconstruct(photo, seed=1)
    assert np.array_equal(a.mask, b.mask) and np.array_equal(a.reconstruction, b.reconstruction)
    batch = r.reconstruct_batch([photo, photo.rotate(90)], seeds=[1, 2])
    assert np.array_equal(batch[0].mask, a.mask)
    assert np.abs(batch[0].reconstruction.astype(int) - a.reconstruction).max() <= 1


def test_explicit_mask_and_validation(tiny_model, photo):
    r = Reconstructor(tiny_model, device="cpu")
    grid = np.zeros((4, 4), dtype=int)
    grid[0] = 1
    rec = r.reconstruct(photo, mask=grid)
    assert np.array_equal(rec.mask, grid) and rec.strategy == "custom"
    with pytest.raises(InvalidParameterError, match="4x4"):
        r.reconstruct(photo, mask=np.zeros((3, 3)))
    with pytest.raises(InvalidParameterError, match="at least one"):
        r.reconstruct(photo, mask=np.zeros((4, 4)))
    with pytest.raises(InvalidParameterError, match="seed"):
        r.reconstruct(photo, seed=-3)
    with pytest.raises(InvalidParameterError, match="0.75"):
        r.reconstruct(photo, strategy="grid", mask_ratio=0.5)


def test_norm_pix_uses_target_stats_flag(photo):
    model = create_model("mae_vit_tiny_patch16", img_size=64, norm_pix_loss=True, depth=1)
    rec = Reconstructor(model, device="cpu").reconstruct(photo, seed=0)
    assert rec.uses_target_stats


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "1", "LA"])
def test_any_image_mode(tiny_model, photo, mode):
    if mode == "I;16":
        img = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
        assert img.mode == "I;16"
    else:
        img = photo.convert(mode)
    rec = Reconstructor(tiny_model, device="cpu").reconstruct(img, seed=0)
    assert rec.original.shape == (64, 64, 3)
    if mode == "I;16":  # scaled, not clipped to white
        assert 20 < rec.original.mean() < 235


def test_keep_aspect_gives_a_non_square_grid(tiny_model):
    wide = Image.new("RGB", (400, 100), (120, 50, 200))
    rec = Reconstructor(tiny_model, device="cpu").reconstruct(wide, seed=0, resize="keep-aspect")
    h, w = rec.mask.shape
    assert w > h and rec.original.shape == (h * 16, w * 16, 3)


def test_reconstruct_cli_writes_four_panel_png(tmp_path, tiny_checkpoint, photo, capsys):
    src = tmp_path / "in.png"
    photo.save(src)
    out = tmp_path / "fig.png"
    code = main(["reconstruct", str(src), "-o", str(out), "--checkpoint", str(tiny_checkpoint),
                 "--seed", "3", "--strategy", "block", "--ratio", "0.5"])
    assert code == 0
    fig = Image.open(out)
    assert fig.size == (4 * 64 + 5 * 8, 64 + 18 + 8 + 8)
    summary = json.loads(capsys.readouterr().out)
    assert summary["seed"] == 3 and summary["strategy"] == "block" and summary["mask_ratio"] == 0.5
    # the four panels differ: masked has grey holes, reconstruction is not the original
    arr = np.asarray(fig)
    panels = [arr[8 + 18: 8 + 18 + 64, 8 + i * 72: 8 + i * 72 + 64] for i in range(4)]
    assert not np.array_equal(panels[0], panels[1]) and not np.array_equal(panels[0], panels[2])


def test_cli_errors_are_messages_not_tracebacks(tmp_path, tiny_checkpoint):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8garbage")
    proc = subprocess.run(
        [sys.executable, "-m", "mae_cli", "reconstruct", str(bad), "-o", str(tmp_path / "o.png"),
         "--checkpoint", str(tiny_checkpoint)], capture_output=True, text=True)
    assert proc.returncode == 1 and "cannot read image" in proc.stderr
    assert "Traceback" not in proc.stderr
