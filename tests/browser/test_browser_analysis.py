"""The analysis page in real headless Chromium: every chart is drawn, nothing leaves the server.

Drives Debian's ``chromium`` through Playwright (no Playwright browser download). A missing
browser is a failure, not a skip: ``apt-get install -y chromium``.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from mae_tools.testing import free_port
from support.browser_helpers import launch_chromium, wait_for_js
from support.analysis_data import PAGE_FIGURES, PERF_FIGURES, RUN_FIGURES, snapshot_png, write_ours

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@contextmanager
def serve(app) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free local port in a background thread."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def browser_page(base_url: str):
    with launch_chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        outside: list[str] = []
        errors: list[str] = []

        def route(r):
            if r.request.url.startswith(base_url) or r.request.url.startswith("data:"):
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: errors.append(f"console: {m.text}")
                if m.type == "error" else None)
        yield page, outside, errors


COUNT_DRAWN = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .filter(el => el.querySelector('svg.main-svg')).length"""

TRACE_POINTS = """() => Object.fromEntries(Array.from(document.querySelectorAll('.an-plot'))
    .filter(el => el.data)
    .map(el => [el.dataset.figure, el.data.map(t => t.y.length)]))"""


def test_analysis_page_draws_every_chart(tmp_path, monkeypatch):
    runs_dir, bench_dir = tmp_path / "runs", tmp_path / "bench-results"
    monkeypatch.setenv("MAE_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("MAE_BENCH_DIR", str(bench_dir))
    write_ours(runs_dir, bench_dir)
    (tmp_path / "ckpts").mkdir()
    from app import Settings, create_app

    app = create_app(Settings(checkpoint_dir=tmp_path / "ckpts"))
    expected = PAGE_FIGURES + PERF_FIGURES + RUN_FIGURES
    ARTIFACTS.mkdir(exist_ok=True)

    with serve(app) as base_url, browser_page(base_url) as (page, outside, errors):
        page.goto(f"{base_url}/analysis", wait_until="load")
        wait_for_js(page, f"({COUNT_DRAWN})() >= {len(expected)}", timeout=60_000)
        assert page.evaluate(COUNT_DRAWN) == len(expected)

        # every chart is the spec the server built: same traces and points
        specs = page.evaluate("JSON.parse(document.getElementById('analysis-figures')"
                              ".textContent)")
        drawn = page.evaluate(TRACE_POINTS)
        assert set(drawn) == set(expected)
        for fig_id in expected:
            assert drawn[fig_id] == [len(t["y"]) for t in specs[fig_id]["data"]], fig_id
        # and the SVG really holds the marks: Table 1a has 2 x 5 bars, Figure 9 2 x 8 points
        assert page.locator('#table1a .bars .point').count() == 10
        assert page.locator('#figure9 .scatterlayer .points path').count() == 16
        # the PNG and SVG download buttons are in each chart's toolbar
        assert page.locator('#figure5 .modebar-btn[data-title="Download plot as SVG"]').count() == 1
        assert page.locator('#figure5 .modebar-btn[data-title^="Download plot as"]').count() == 2

        # performance: 2 models x 2 batch sizes of bars, p50 bars with p90 whiskers, the
        # batching sweep as two lines, the GPU training run as a fourth Table 2 series
        assert page.locator('#perf-infer .bars .point').count() == 4
        assert page.locator('#perf-peer .bars .point').count() == 6
        assert page.locator('#perf-latency .bars .point').count() == 4
        assert page.locator('#perf-latency .errorbar').count() == 4
        assert page.locator('#perf-throughput .scatterlayer .trace').count() == 2
        assert page.locator('#bench .bars .point').count() == 8
        assert "GPU: Test GPU 80GB" in page.locator("#bench-infer_gpu").inner_text()
        assert "torch: 2.14.1" in page.locator("#bench-infer").inner_text()

        page.screenshot(path=str(ARTIFACTS / "analysis.png"), full_page=True)
        page.locator("#performance").screenshot(path=str(ARTIFACTS / "analysis-performance.png"))
        page.locator("#table1").screenshot(path=str(ARTIFACTS / "analysis-table1.png"))
        page.locator("#figure5").screenshot(path=str(ARTIFACTS / "analysis-figure5.png"))

        # sortable heat-table: sort Table 3's ViT-B column, best first
        vitb = page.locator('table[data-table="table3"] thead th').nth(2)
        vitb.locator("button").click()
        assert vitb.get_attribute("aria-sort") == "descending"
        first = page.locator('table[data-table="table3"] tbody tr').first
        assert first.locator("td").first.inner_text() == "MAE"

        # snapshot slider: steps 0, 20, 40; starts at the newest
        slider = page.locator("#snap-slider")
        assert page.locator("#snap-step").inner_text() == "40"
        slider.fill("1")
        assert page.locator("#snap-step").inner_text() == "20"
        assert page.locator("#snap-img").get_attribute("src").endswith("/snapshots/20")
        wait_for_js(page, "(() => { const img = document.getElementById('snap-img'); "
                               "return img.complete && img.naturalWidth === 256; })()",
                               timeout=20_000)

        # the run is live: new metrics lines and a new snapshot show up without a reload
        run = runs_dir / "demo-run"
        with open(run / "metrics.jsonl", "a") as f:
            f.write("}\n")  # the writer finishes the line that was cut off
            for s in range(42, 46):
                f.write(json.dumps({"step": s, "epoch": s / 10, "lr": 1.5e-4, "loss": 0.25,
                                    "images_per_s": 41.0, "data_wait_frac": 0.05}) + "\n")
        (run / "snapshots" / "step_00000045.png").write_bytes(snapshot_png(45))
        wait_for_js(page,
            "document.querySelector('[data-figure=\"run-loss\"]').data[0].x.length === 45",
            timeout=20_000)
        wait_for_js(page, "document.getElementById('snap-slider').max === '3'",
                               timeout=20_000)
        page.locator("#runs").screenshot(path=str(ARTIFACTS / "analysis-runs.png"))

        # switching runs redraws the run charts from /api/runs/<id>/figures
        page.select_option("#run-select", "older-run")
        wait_for_js(page,
            "document.querySelector('[data-figure=\"run-loss\"]').data[0].x.length === 10",
            timeout=20_000)
        assert page.locator("#run-status").text_content() == "finished"
        assert not page.locator("#snap-viewer").is_visible()

        assert outside == [], f"requests left the server: {outside}"
        assert errors == [], errors
