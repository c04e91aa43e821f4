"""The Models page in a real browser: download a catalog entry from a local mirror with visible
progress, then open the Reconstruct page with it selected (no restart)."""

from __future__ import annotations

import hashlib
import json

import pytest

from mae_tools.testing import ServerProcess, write_checkpoint
from support.browser_helpers import wait_for_js, watched_page
from support.file_server import file_host, official_pth_bytes

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def mirror():
    with file_host() as host:
        yield host


@pytest.fixture(scope="module")
def server(tmp_path_factory, mirror):
    tmp = tmp_path_factory.mktemp("models-page")
    data = official_pth_bytes(tmp)
    mirror.add("visualize/tiny.pth", data)
    catalog = tmp / "catalog.json"
    catalog.write_text(json.dumps([{"id": "tiny-official", "url": "visualize/tiny.pth",
                                    "md5_prefix": hashlib.md5(data).hexdigest()[:8],
                                    "description": "tiny MAE, official layout", "licence": "test"}]))
    write_checkpoint(tmp / "checkpoints", "mae-lab-default")
    env = {"MAE_CHECKPOINT_CATALOG": str(catalog), "MAE_CHECKPOINT_MIRROR": mirror.url,
           "MAE_DATA_DIR": str(tmp / "data")}
    with ServerProcess(tmp / "checkpoints", "mae-lab-default", env=env, args=["--device", "cpu"]) as proc:
        proc.wait_ready()
        yield proc.url


def test_download_shows_progress_then_the_model_is_offered_for_reconstruction(browser, server, mirror):
    mirror.chunk, mirror.delay_per_chunk_s = 2048, 0.03  # slow enough to watch the bar move
    with watched_page(browser, server, viewport={"width": 1400, "height": 900}) as page:
        page.goto(server + "/models")
        card = page.locator('.model-card[data-id="tiny-official"]')
        assert card.get_attribute("data-state") == "available"
        assert "CC-BY-NC 4.0" in page.locator('.model-card[data-id="mae_visualize_vit_large"]').inner_text()
        card.get_by_role("button", name="Download").click()
        progress = page.locator('.model-card[data-id="tiny-official"] .download-progress')
        progress.wait_for(timeout=20_000)
        assert " of " in progress.inner_text()
        page.reload()  # the server keeps the state: the bar is still (or already) there
        page.wait_for_selector('.model-card[data-id="tiny-official"][data-state="present"]', timeout=60_000)
        link = page.locator('.model-card[data-id="tiny-official"] a', has_text="Reconstruct with it")
        assert link.get_attribute("href") == "/?model=tiny-official"
        link.click()
        page.wait_for_url("**/?model=tiny-official*")
        wait_for_js(page, "document.querySelector('#model-select').value === 'tiny-official'")
        assert page.problems == []
