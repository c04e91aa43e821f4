"""The Models page in a real browser: download a catalog entry from a local mirror with visible
progress, then open the Reconstruct page with it selected (no restart)."""

from __future__ import annotations

import pytest

from support.browser_helpers import wait_for_js, watched_page
from support.catalog_server import download_from_catalog

pytestmark = pytest.mark.browser


def test_download_shows_progress_then_the_model_is_offered_for_reconstruction(browser, catalog_site, catalog_mirror):
    with watched_page(browser, catalog_site, viewport={"width": 1400, "height": 900}) as page:
        page.goto(catalog_site + "/models")
        assert "CC-BY-NC 4.0" in page.locator('.model-card[data-id="mae_visualize_vit_large"]').inner_text()
        download_from_catalog(page, catalog_site, catalog_mirror)
        link = page.locator('.model-card[data-id="tiny-official"] a', has_text="Reconstruct with it")
        assert link.get_attribute("href") == "/?model=tiny-official"
        link.click()
        page.wait_for_url("**/?model=tiny-official*")
        wait_for_js(page, "document.querySelector('#model-select').value === 'tiny-official'")
        assert page.problems == []
