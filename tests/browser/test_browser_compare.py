"""Compare in a real browser: download a catalog model from a local mirror (visible progress),
reconstruct with it, then compare it with the default under one mask (a row and a PSNR each)."""

from __future__ import annotations

import pytest

from support.browser_helpers import wait_for_js, watched_page
from support.catalog_server import download_from_catalog

pytestmark = pytest.mark.browser


def test_download_reconstruct_then_compare_with_the_default(browser, catalog_site, catalog_mirror):
    with watched_page(browser, catalog_site, viewport={"width": 1400, "height": 900}) as page:
        download_from_catalog(page, catalog_site, catalog_mirror)
        page.locator('.model-card[data-id="tiny-official"] a', has_text="Reconstruct with it").click()
        page.wait_for_url("**/?model=tiny-official*")
        page.locator(".sample").first.click()
        # the single view reconstructs with the downloaded model
        wait_for_js(page, "document.querySelectorAll('#view-single .fig-row img[src^=\"data:\"]').length === 4")
        assert "PSNR" in page.locator("#view-single .fig-row .stats").inner_text()

        page.get_by_role("tab", name="Compare").click()
        # the picker starts with the default and the model picked in the sidebar ticked
        wait_for_js(page, "document.querySelectorAll('#compare-models input:checked').length === 2")
        assert page.locator("#compare-tiny-official").is_checked()
        assert page.locator("#compare-mae-lab-default").is_checked()
        wait_for_js(page, "document.querySelectorAll('#compare-rows .compare-row').length === 2")
        rows = page.locator("#compare-rows .compare-row")
        assert [rows.nth(i).get_attribute("data-model") for i in range(2)] == ["mae-lab-default", "tiny-official"]
        psnrs = []
        for i in range(2):
            row = rows.nth(i)
            assert row.locator("img").count() == 3
            wait_for_js(page, "(row) => Array.from(row.querySelectorAll('img')).every((i) => i.complete && i.naturalWidth > 0)",
                        row.element_handle())
            text = row.locator(".psnr").inner_text()
            assert text.startswith("masked-patch PSNR ") and text.split()[2].replace(".", "").isdigit()
            psnrs.append(float(text.split()[2]))
        # the same mask: the masked panels are identical images; two models: two reconstructions
        # (two random-init tiny models can score the same to 0.01 dB, so the images are compared)
        def panel(i: int, name: str) -> str | None:
            return rows.nth(i).locator(f'[data-panel="{name}"] img').get_attribute("src")

        assert panel(0, "masked") == panel(1, "masked")
        assert panel(0, "reconstruction") != panel(1, "reconstruction"), psnrs

        # unticking one leaves fewer than two: the rows go and the hint says what to do
        page.locator("#compare-tiny-official").uncheck()
        wait_for_js(page, "document.querySelectorAll('#compare-rows .compare-row').length === 0")
        assert "Tick 2–4" in page.locator("#compare-hint").inner_text()
        assert page.problems == []
