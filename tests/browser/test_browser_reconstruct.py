"""End to end in a real browser: `mae serve` in a subprocess, Debian's headless Chromium driven
by Playwright. Screenshots go to test-artifacts/ (look at them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mae_tools.testing import free_port, synthetic_photo, write_checkpoint
from support.browser_helpers import watched_page

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m mae_core serve` on a free port with a 224 px random-init default checkpoint."""
    folder = tmp_path_factory.mktemp("checkpoints")
    write_checkpoint(folder, "mae-lab-default", size=224,
                     card={"data": {"description": "random initialisation (browser test)"}})
    write_checkpoint(folder, "normpix-224", size=224, norm_pix_loss=True, seed=1)
    port = free_port()
    log = (tmp_path_factory.mktemp("logs") / "serve.log").open("w")
    env = {**os.environ, "MAE_BATCH_WINDOW_MS": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mae_cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--checkpoint-dir", str(folder), "--device", "cpu"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"mae serve exited with {proc.returncode}: {Path(log.name).read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(base + "/api/ready", timeout=2) as resp:
                if json.load(resp)["ready"]:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("mae serve did not become ready in 90 s")
        time.sleep(0.2)
    yield base
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def page(browser, server):
    with watched_page(browser, server, viewport={"width": 1400, "height": 1000},
                      accept_downloads=True) as pg:
        yield pg


def panel_srcs(page, view="single", row=0):
    return page.eval_on_selector_all(
        f"#view-{view} [data-rows] .fig-row:nth-child({row + 1}) .fig-panel img",
        "imgs => imgs.map(i => i.complete && i.naturalWidth ? i.src : null)")


def wait_panels_change(page, before, view="single"):
    page.wait_for_function(
        """([view, before]) => {
            const imgs = [...document.querySelectorAll(`#view-${view} [data-rows] .fig-row:first-child .fig-panel img`)];
            return imgs.length === 4 && imgs.every(i => i.complete && i.naturalWidth > 0)
                && imgs[1].src !== before[1] && !document.querySelector('#busy').textContent;
        }""", arg=[view, before], timeout=15000)
    return panel_srcs(page, view)


def test_upload_slider_strategy_views_and_custom_mask(page, server, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    photo = tmp_path / "test-photo.jpg"  # a real photo when the samples are there
    sample = REPO / "static" / "samples" / "horses.jpg"
    if sample.is_file():
        shutil.copy(sample, photo)
    else:
        synthetic_photo(480, 360, seed=3).save(photo, quality=92)

    page.goto(server + "/")
    page.wait_for_selector("#ratio")
    first = panel_srcs(page)  # a sample may already be shown; remember it
    page.set_input_files("#file-input", str(photo))
    page.wait_for_function("document.querySelector('#file-info').textContent.includes('test-photo.jpg')")
    uploaded = wait_panels_change(page, first if len(first) == 4 else [None] * 4)
    assert len(uploaded) == 4 and all(s and s.startswith("data:image/jpeg;base64,") for s in uploaded)
    sizes = page.eval_on_selector_all("#view-single .fig-panel img", "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
    assert sizes == [[224, 224]] * 4
    assert page.eval_on_selector_all("#view-single .fig-panel figcaption", "cs => cs.map(c => c.textContent)") == [
        "Original", "Masked", "Reconstruction", "Reconstruction + visible"]
    assert "75% removed" in page.inner_text("#view-single .fig-row .label")
    assert page.inner_text("#metrics").count("ms") >= 2 and "PSNR" in page.inner_text("#metrics")
    page.wait_for_selector("#heatmap .main-svg")  # plotly.js drew the heat-map
    page.screenshot(path=str(ARTIFACTS / "reconstruct-desktop.png"), full_page=True)

    # keyboard on the slider: 75% -> 85%
    page.focus("#ratio")
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    assert page.inner_text("#ratio-out") == "85%"
    after_slider = wait_panels_change(page, uploaded)
    assert after_slider[0] == uploaded[0]  # same image, new mask
    assert "85% removed" in page.inner_text("#view-single .fig-row .label")

    # block masking
    page.click("label[for=strategy-block]")
    after_block = wait_panels_change(page, after_slider)
    assert "block masking" in page.inner_text("#view-single .fig-row .label")
    assert after_block[1] != after_slider[1]

    # grid locks the slider at 75%
    page.click("label[for=strategy-grid]")
    wait_panels_change(page, after_block)
    assert page.is_disabled("#ratio") and page.inner_text("#ratio-out") == "75%"
    assert "Locked at 75%" in page.inner_text("#ratio-help")
    page.click("label[for=strategy-random]")
    assert not page.is_disabled("#ratio") and page.inner_text("#ratio-out") == "85%"

    # ratio sweep: three rows (75/85/95%)
    page.click("#tab-sweep")
    page.wait_for_function("document.querySelectorAll('#view-sweep .fig-row').length === 3", timeout=15000)
    labels = page.eval_on_selector_all("#view-sweep .fig-row .label", "ls => ls.map(l => l.textContent)")
    assert [label.split()[0] for label in labels] == ["75%", "85%", "95%"]

    # strategy comparison: random / block / grid
    page.click("#tab-strategies")
    page.wait_for_function("document.querySelectorAll('#view-strategies .fig-row').length === 3", timeout=15000)
    labels = page.eval_on_selector_all("#view-strategies .fig-row .label", "ls => ls.map(l => l.textContent)")
    assert [label.split(" · ")[1] for label in labels] == ["random masking", "block masking", "grid masking"]
    page.screenshot(path=str(ARTIFACTS / "reconstruct-strategies.png"), full_page=True)

    # custom mask: click a patch, the result follows the edited mask
    page.click("#tab-custom")
    page.wait_for_selector("#view-custom .fig-row img[src^='data:']", timeout=15000)
    count_before = page.inner_text("#custom-count")
    box = page.locator("#mask-editor").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5 / 14, box["y"] + box["height"] * 0.5 / 14)
    page.wait_for_function("([b]) => document.querySelector('#custom-count').textContent !== b",
                           arg=[count_before])
    page.wait_for_function("document.querySelector('#view-custom .fig-row .label').textContent.includes('custom mask')"
                           " && !document.querySelector('#busy').textContent", timeout=15000)
    hidden = int(page.inner_text("#custom-count").split()[0])
    assert hidden in (int(count_before.split()[0]) - 1, int(count_before.split()[0]) + 1)
    # keyboard editing: Space toggles the patch under the cursor back
    page.focus("#mask-editor")
    page.keyboard.press("Space")
    page.wait_for_function("([h]) => !document.querySelector('#custom-count').textContent.startsWith(h + ' ')",
                           arg=[hidden])
    page.screenshot(path=str(ARTIFACTS / "reconstruct-custom.png"), full_page=True)

    # download the figure as PNG
    with page.expect_download() as info:
        page.click("#download")
    target = tmp_path / "figure.png"
    info.value.save_as(target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # phone width: panels two per row, nothing wider than the screen
    page.click("#tab-single")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "reconstruct-phone.png"), full_page=True)
    assert not page.problems, page.problems


def test_norm_pix_checkpoint_shows_the_note(page, server, tmp_path):
    photo = tmp_path / "p.png"
    synthetic_photo(300, 300, seed=5).save(photo)
    page.goto(server + "/")
    page.select_option("#model-select", "normpix-224")
    assert "yes" in page.inner_text("#model-card")
    page.set_input_files("#file-input", str(photo))
    page.wait_for_selector("#normpix-note:not([hidden])", timeout=15000)
    assert "true mean and variance" in page.inner_text("#normpix-note")
    assert not page.problems, page.problems
