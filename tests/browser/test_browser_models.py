"""The Models page in a real browser: download a catalog entry from a local mirror with visible
progress, then open the Reconstruct page with it selected (no restart)."""

from __future__ import annotations

import pytest

from support.browser_helpers import wait_for_js, watched_page
from support.catalog_server import catalog_server, download_from_catalog
from support.file_server import file_host

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def mirror():
    with file_host() as host:
        yield host


@pytest.fixture(scope="module")
def server(tmp_path_factory, mirror):
    with catalog_server(tmp_path_factory.mktemp("models-page"), mirror) as url:
        yield url


def test_download_shows_progress_then_the_model_is_offered_for_reconstruction(browser, server, mirror):
    with watched_page(browser, server, viewport={"width": 1400, "height": 900}) as page:
        page.goto(server + "/models")
        assert "CC-BY-NC 4.0" in page.locator('.model-card[data-id="mae_visualize_vit_large"]').inner_text()
        download_from_catalog(page, server, mirror)
        link = page.locator('.model-card[data-id="tiny-official"] a', has_text="Reconstruct with it")
        assert link.get_attribute("href") == "/?model=tiny-official"
        link.click()
        page.wait_for_url("**/?model=tiny-official*")
        wait_for_js(page, "document.querySelector('#model-select').value === 'tiny-official'")
        assert page.problems == []
