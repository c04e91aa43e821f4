"""End to end in a real browser: `mae serve` in a subprocess, Debian's headless Chromium driven
by Playwright. Screenshots go to test-artifacts/ (look at them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from mae_tools.testing import free_port, synthetic_photo, write_checkpoint
from support.browser_helpers import wait_for_js, watched_page

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
    wait_for_js(page,
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
    wait_for_js(page, "document.querySelector('#file-info').textContent.includes('test-photo.jpg')")
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
    wait_for_js(page, "document.querySelectorAll('#view-sweep .fig-row').length === 3", timeout=15000)
    labels = page.eval_on_selector_all("#view-sweep .fig-row .label", "ls => ls.map(l => l.textContent)")
    assert [label.split()[0] for label in labels] == ["75%", "85%", "95%"]

    # strategy comparison: random / block / grid
    page.click("#tab-strategies")
    wait_for_js(page, "document.querySelectorAll('#view-strategies .fig-row').length === 3", timeout=15000)
    labels = page.eval_on_selector_all("#view-strategies .fig-row .label", "ls => ls.map(l => l.textContent)")
    assert [label.split(" · ")[1] for label in labels] == ["random masking", "block masking", "grid masking"]
    page.screenshot(path=str(ARTIFACTS / "reconstruct-strategies.png"), full_page=True)

    # custom mask: click a patch, the result follows the edited mask
    page.click("#tab-custom")
    page.wait_for_selector("#view-custom .fig-row img[src^='data:']", timeout=15000)
    count_before = page.inner_text("#custom-count")
    box = page.locator("#mask-editor").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5 / 14, box["y"] + box["height"] * 0.5 / 14)
    wait_for_js(page, "([b]) => document.querySelector('#custom-count').textContent !== b",
                           arg=[count_before])
    wait_for_js(page, "document.querySelector('#view-custom .fig-row .label').textContent.includes('custom mask')"
                           " && !document.querySelector('#busy').textContent", timeout=15000)
    hidden = int(page.inner_text("#custom-count").split()[0])
    assert hidden in (int(count_before.split()[0]) - 1, int(count_before.split()[0]) + 1)
    # keyboard editing: Space toggles the patch under the cursor back
    page.focus("#mask-editor")
    page.keyboard.press("Space")
    wait_for_js(page, "([h]) => !document.querySelector('#custom-count').textContent.startsWith(h + ' ')",
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
    assert "norm-pix" in page.inner_text("#model-details summary")  # said while the card is collapsed
    page.click("#model-details summary")
    assert "yes" in page.inner_text("#model-card")
    page.set_input_files("#file-input", str(photo))
    page.wait_for_selector("#normpix-note:not([hidden])", timeout=15000)
    assert "true mean and variance" in page.inner_text("#normpix-note")
    assert not page.problems, page.problems


# ---------------------------------------------------------------------- layout, state, messages
def box(page, selector):
    b = page.locator(selector).bounding_box()
    assert b is not None, f"{selector} is not rendered"
    return b


def wait_rendered(page, view="single"):
    wait_for_js(page,
        """(view) => {
            const imgs = [...document.querySelectorAll(`#view-${view} [data-rows] .fig-row:first-child .fig-panel img`)];
            return imgs.length === 4 && imgs.every(i => i.complete && i.naturalWidth > 0)
                && !document.querySelector('#busy').textContent;
        }""", arg=view, timeout=20000)


@pytest.mark.parametrize("width,height", [(1400, 900), (1024, 768)])
def test_masking_ratio_is_on_the_first_screen(browser, server, width, height):
    with watched_page(browser, server, viewport={"width": width, "height": height}) as page:
        page.goto(server + "/")
        wait_rendered(page)
        assert page.evaluate("window.scrollY") == 0
        ratio = box(page, "#ratio")
        assert 0 <= ratio["y"] and ratio["y"] + ratio["height"] <= height, ratio
        # the checkpoint facts are one click away, not a long card above the controls
        assert page.get_attribute("#model-details", "open") is None
        assert "ViT" in page.inner_text("#model-details summary")
        # the raw reconstruction panel says why its visible patches look poor
        note = page.inner_text("#view-single .fig-row [data-panel=reconstruction] .panel-note")
        assert "removed patches only" in note
        assert "not in the loss" in page.inner_text("#metrics [data-metric='Visible-patch MSE']")
        assert not page.problems, page.problems


def test_phone_layout_shows_every_tab_and_reaches_results_sooner(browser, server):
    ARTIFACTS.mkdir(exist_ok=True)
    with watched_page(browser, server, viewport={"width": 390, "height": 844}) as page:
        page.goto(server + "/")
        wait_rendered(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        tablist = box(page, "#tabs")
        for tab in page.query_selector_all("[role=tab]"):
            b = tab.bounding_box()
            # inside the screen and inside the tab list (which would clip an overflowing tab)
            assert b["x"] >= 0 and b["x"] + b["width"] <= 390, (tab.inner_text(), b)
            assert b["x"] >= tablist["x"] and b["x"] + b["width"] <= tablist["x"] + tablist["width"] + 0.5
        first_row = box(page, "#view-single .fig-row")
        print(f"phone 390x844: results at {box(page, '.results')['y']:.0f} px, "
              f"first panels at {first_row['y']:.0f} px")
        # the panels were 1,542 px down (under every control card); now within 1.5 screens
        assert first_row["y"] < 1.5 * 844, first_row
        page.screenshot(path=str(ARTIFACTS / "reconstruct-phone-top.png"))
        assert not page.problems, page.problems


def test_custom_mask_with_nothing_hidden_says_so_and_drops_the_old_result(page, server):
    page.goto(server + "/?view=custom")
    wait_rendered(page, "custom")
    assert page.is_hidden("#custom-message")
    page.click("#mask-clear")  # Reveal all: 0 hidden patches
    page.wait_for_selector("#custom-message:not([hidden])")
    assert "No patch is hidden" in page.inner_text("#custom-message")
    wait_for_js(page, "!document.querySelector('#busy').textContent")
    assert page.query_selector_all("#view-custom .fig-row") == []  # no stale "75% removed" row
    assert page.is_disabled("#download") and page.is_hidden("#error")
    assert page.inner_text("#custom-count").startswith("0 of ")

    page.click("#mask-invert")  # every patch hidden
    wait_for_js(page, "document.querySelector('#custom-message').textContent.includes('Every patch is hidden')")
    assert page.query_selector_all("#view-custom .fig-row") == []

    page.click("#mask-clear")
    editor = box(page, "#mask-editor")
    page.mouse.click(editor["x"] + editor["width"] * 0.5 / 14, editor["y"] + editor["height"] * 0.5 / 14)
    wait_rendered(page, "custom")
    assert page.is_hidden("#custom-message")
    assert page.inner_text("#view-custom .fig-row .label").startswith("1% removed · custom mask")
    assert not page.is_disabled("#download")
    assert not page.problems, page.problems


def url_params(page):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).query))


def test_state_lives_in_the_url_and_a_link_restores_it(browser, page, server):
    page.goto(server + "/")
    wait_rendered(page)
    params = url_params(page)
    assert params["model"] == "mae-lab-default" and params["view"] == "single"
    assert params["sample"] == page.get_attribute(".sample[aria-pressed=true]", "data-name")

    samples = page.eval_on_selector_all(".sample", "bs => bs.map(b => b.dataset.name)")
    page.click(f".sample[data-name='{samples[1]}']")
    page.select_option("#model-select", "normpix-224")
    page.click("label[for=strategy-block]")
    page.fill("#seed", "4242")
    page.focus("#ratio")
    for _ in range(5):
        page.keyboard.press("ArrowRight")  # 75% -> 80%
    page.click("#tab-sweep")
    wait_for_js(page, "document.querySelectorAll('#view-sweep .fig-row').length === 3", timeout=20000)
    expected = {"model": "normpix-224", "sample": samples[1], "ratio": "0.8", "strategy": "block",
                "seed": "4242", "view": "sweep"}
    assert url_params(page) == expected
    link = page.url

    with watched_page(browser, server, viewport={"width": 1400, "height": 1000}) as other:
        other.goto(link)
        wait_rendered(other, "sweep")
        assert other.input_value("#model-select") == "normpix-224"
        assert other.get_attribute(f".sample[data-name='{samples[1]}']", "aria-pressed") == "true"
        assert other.is_checked("#strategy-block")
        assert other.input_value("#seed") == "4242" and other.inner_text("#ratio-out") == "80%"
        assert other.get_attribute("#tab-sweep", "aria-selected") == "true" and other.is_hidden("#view-single")
        labels = other.eval_on_selector_all("#view-sweep .fig-row .label", "ls => ls.map(l => l.textContent)")
        assert labels == [f"{r}% removed · block masking · seed 4242" for r in (75, 85, 95)]
        assert url_params(other) == expected  # reloading keeps the link as it was
        assert not other.problems, other.problems

    # a link with values the page cannot use says which, and shows the defaults for them
    bad = (f"{server}/?model=nope&ratio=1.5&strategy=zigzag&seed=-3&view=grid&sample=none.jpg")
    with watched_page(browser, server, viewport={"width": 1400, "height": 1000}) as other:
        other.goto(bad)
        wait_rendered(other)
        text = other.inner_text("#banner [data-kind=link]")
        for part in ("“nope” is not in the checkpoint folder", "ratio “1.5”", "strategy “zigzag”",
                     "seed “-3”", "view “grid”", "sample “none.jpg”"):
            assert part in text, (part, text)
        assert other.input_value("#model-select") == "mae-lab-default"
        assert other.inner_text("#ratio-out") == "75%" and other.is_checked("#strategy-random")
        assert url_params(other)["model"] == "mae-lab-default"
        assert not other.problems, other.problems
    assert not page.problems, page.problems


def test_heatmap_has_no_zeroline_and_offers_a_fixed_scale(page, server):
    page.goto(server + "/")
    page.set_input_files("#file-input", files=[{"name": "p.png", "mimeType": "image/png",
                                                 "buffer": _photo_png()}])
    page.wait_for_selector("#heatmap .main-svg")
    layout = page.evaluate("() => { const l = document.querySelector('#heatmap').layout;"
                           " return [l.xaxis.zeroline, l.yaxis.zeroline]; }")
    assert layout == [False, False]  # no line through column 0
    trace = "() => { const d = document.querySelector('#heatmap').data[0]; return [d.zmin, d.zmax]; }"
    assert page.evaluate(trace) == [None, None]  # default: each view spans its own range
    page.check("#heat-fixed")
    wait_for_js(page, "document.querySelector('#heatmap').data[0].zmax === 3000")
    assert page.evaluate(trace) == [0, 3000]
    page.check("#heat-all")  # another view keeps the fixed range
    wait_for_js(page, "document.querySelector('#heatmap').data[0].z.flat().every(v => v !== null)")
    assert page.evaluate(trace) == [0, 3000]


def _photo_png() -> bytes:
    from mae_tools.testing import png_bytes

    return png_bytes(synthetic_photo(320, 240, seed=4))
