"""The feature explorer in a real browser: embed a labelled dataset and see one point per image."""

from __future__ import annotations

import pytest

from mae_tools.testing import ServerProcess, write_checkpoint
from support.browser_helpers import watched_page
from support.labelled_images import make_labelled

pytestmark = pytest.mark.browser


def test_features_page_draws_one_point_per_image_coloured_by_class(browser, tmp_path):
    write_checkpoint(tmp_path / "checkpoints", "mae-lab-default")
    make_labelled(tmp_path / "roots" / "colours", per_class=5, classes=("blue", "red", "green"))
    env = {"MAE_DATA_DIR": str(tmp_path / "data"), "MAE_DATA_ROOTS": str(tmp_path / "roots")}
    with ServerProcess(tmp_path / "checkpoints", "mae-lab-default", env=env, args=["--device", "cpu"]) as server:
        server.wait_ready()
        with watched_page(browser, server.url, viewport={"width": 1400, "height": 900}) as page:
            page.goto(server.url + "/features")
            page.select_option("#feat-dataset", "colours")
            page.get_by_role("button", name="Embed").click()
            page.wait_for_selector("#scatter[data-points='15']", timeout=60_000)
            traces = page.evaluate("document.getElementById('scatter').data.map(t => [t.name, t.x.length])")
            assert sorted(traces) == [["blue", 5], ["green", 5], ["red", 5]]
            assert "15 images" in page.locator("#embed-status").inner_text()
            assert page.problems == []
