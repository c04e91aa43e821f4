"""The attention overlay on the Reconstruct page (/): toggle it and see the last block's
cls-to-patch attention drawn over the masked panel, per head and as the head mean."""

from __future__ import annotations


import pytest

from mae_tools.testing import ServerProcess, synthetic_photo, write_checkpoint
from support.browser_helpers import wait_for_js, watched_page

pytestmark = pytest.mark.browser


def test_attention_overlay_appears_when_toggled(browser, tmp_path):
    write_checkpoint(tmp_path / "checkpoints", "mae-lab-default", size=224)
    photo = tmp_path / "photo.png"
    synthetic_photo(320, 240, seed=2).save(photo)
    with ServerProcess(tmp_path / "checkpoints", "mae-lab-default", args=["--device", "cpu"]) as server:
        server.wait_ready()
        with watched_page(browser, server.url, viewport={"width": 1400, "height": 1000}) as page:
            page.goto(server.url + "/")
            page.set_input_files("#file-input", str(photo))
            wait_for_js(page, "document.querySelectorAll('#view-single .fig-panel img').length === 4 && "
                       "!document.querySelector('#busy').textContent")
            assert page.evaluate("document.querySelector('.attention-overlay')") is None
            page.check("#show-attention")
            wait_for_js(page, "!!document.querySelector('#view-single .fig-panel[data-panel=masked] .attention-overlay')")
            size = page.evaluate("(() => { const c = document.querySelector('.attention-overlay');"
                                 " return [c.width, c.height, c.dataset.head]; })()")
            assert size == [14, 14, "mean"]  # one canvas pixel per patch of the 224 px /16 model
            heads = page.evaluate("document.querySelectorAll('#attention-head option').length")
            assert heads == 1 + 3  # the mean and the tiny model's three heads
            page.select_option("#attention-head", "1")
            wait_for_js(page, "document.querySelector('.attention-overlay').dataset.head === '1'")
            page.uncheck("#show-attention")
            wait_for_js(page, "!document.querySelector('.attention-overlay')")
            assert page.problems == []
