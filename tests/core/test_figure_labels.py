"""Issue 13: snapshot labels readable at page size: small panels are enlarged so titles fit."""

from __future__ import annotations

from PIL import Image

from mae_core.figure import MIN_PANEL, PANEL_TITLES, compose_figure
from mae_core.reconstruct import Reconstruction


def test_small_panels_are_enlarged_so_titles_fit(tmp_path):
    from mae_tools.testing import write_checkpoint
    from mae_core import Reconstructor

    rec = Reconstructor.from_checkpoint(write_checkpoint(tmp_path, "tiny"), device="cpu")
    out = rec.reconstruct(Image.new("RGB", (32, 32)), mask_ratio=0.75)
    assert isinstance(out, Reconstruction)
    w = out.original.shape[1]
    figure = compose_figure(out, min_panel=MIN_PANEL)  # as training snapshots draw it
    panel = figure.width // 4
    assert panel >= MIN_PANEL > w
    assert max(len(t) for t in PANEL_TITLES) * 6 <= MIN_PANEL  # PIL's default font: ~6 px a character
    big = compose_figure(out, min_panel=w)  # already wide enough: drawn as it is
    assert big.width == 4 * w + 5 * 8
