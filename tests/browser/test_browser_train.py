"""The Train pages in headless Chromium against real `mae serve` + `mae worker` processes:
form validation and queueing, the live job list, a finished job's curves and snapshot, and
cancel on a queued job. Screenshots go to test-artifacts/ (look at them)."""

from __future__ import annotations


import pytest

from support.browser_helpers import wait_for_js, watched_page
from support.jobs_helpers import serve_until_healthy, REPO, job_request, start_mae, stop, subprocess_env
from support.train_helpers import make_images

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-train")
    images, data = root / "images", root / "data"
    make_images(images / "shapes", count=32, size=40)
    make_images(images / "gradients", count=24, size=40, seed=5)
    env = subprocess_env(MAE_DATA_ROOTS=str(images), MAE_CHECKPOINT_DIR=str(root / "none"), MAE_DEVICE="cpu")
    serve, base, http = serve_until_healthy(root, data, env)
    # one finished job to look at, trained by a worker that then leaves
    done = http.post("/api/jobs", json=job_request("shapes", epochs=20, snapshot_every=10)).json()
    worker = start_mae(["worker", "--data-dir", str(data), "--poll-interval", "0.2", "--exit-when-idle"],
                       root / "worker.log", env)
    assert worker.wait(180) == 0, (root / "worker.log").read_text()[-2000:]
    assert http.get(f"/api/jobs/{done['id']}").json()["state"] == "succeeded"
    try:
        yield base, http, done["id"]
    finally:
        stop(serve)
        http.close()


@pytest.fixture
def page(browser, server):
    with watched_page(browser, server[0], viewport={"width": 1360, "height": 900}) as pg:
        yield pg


def test_form_validates_queues_and_lists_jobs(page, server):
    base, http, done_id = server
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(base + "/train")
    page.wait_for_selector(f"tr[data-job='{done_id}'] .state-succeeded")
    assert page.is_visible("#no-worker")  # the worker has left
    assert page.eval_on_selector_all("#f-dataset option", "os => os.map(o => o.value)") == ["gradients", "shapes"]

    # a batch larger than the dataset is refused with what to change, before anything is sent
    page.select_option("#f-dataset", "gradients")
    page.fill("#f-batch", "64")
    page.click("#f-submit")
    page.wait_for_selector("#form-error:not([hidden])")
    assert "at most 24" in page.inner_text("#form-error")
    assert page.get_attribute("#f-batch", "aria-invalid") == "true"

    # the server's own checks come back the same way (ViT-H has 14 px patches)
    page.fill("#f-batch", "8")
    page.click(".advanced summary")
    page.fill("#f-img", "64")
    page.select_option("#f-model", "mae_vit_huge_patch14")
    page.click("#f-submit")
    wait_for_js(page, "document.querySelector('#form-error').textContent.includes('multiple of patch_size 14')")
    page.screenshot(path=str(ARTIFACTS / "train-form-error.png"))

    page.select_option("#f-model", "mae_vit_tiny_patch16")
    page.click("label[for='f-strategy-grid']")
    assert page.is_disabled("#f-ratio") and page.inner_text("#f-ratio-out") == "75%"
    page.fill("#f-epochs", "2")
    page.click("#f-submit")
    page.wait_for_selector("#form-status a")
    new_id = page.inner_text("#form-status a")
    page.wait_for_selector(f"tr[data-job='{new_id}'] .state-queued")
    assert page.is_hidden("#form-error")
    job = http.get(f"/api/jobs/{new_id}").json()
    assert job["params"]["dataset"] == "gradients" and job["params"]["mask_strategy"] == "grid"
    assert job["params"]["img_size"] == 64 and job["params"]["batch_size"] == 8
    page.screenshot(path=str(ARTIFACTS / "train-page.png"), full_page=True)

    # cancel it from its page
    page.click(f"tr[data-job='{new_id}'] a.job-link")
    page.wait_for_selector("#cancel:not([hidden])")
    assert page.is_hidden("#retry") and page.is_hidden("#use-model")
    page.click("#cancel")
    page.wait_for_selector("#job-state.state-cancelled")
    page.wait_for_selector("#retry:not([hidden])")
    assert page.is_hidden("#cancel")
    expected = "the server responded with a status of 422"  # the deliberate ViT-H submission
    assert [p for p in page.problems if expected not in p] == []
    assert sum(expected in p for p in page.problems) == 1


def test_finished_job_page_shows_curves_snapshot_and_log(page, server):
    base, _http, done_id = server
    page.goto(f"{base}/train/jobs/{done_id}")
    page.wait_for_selector("#chart-loss .main-svg")  # plotly.js drew both curves
    page.wait_for_selector("#chart-lr .main-svg")
    wait_for_js(page, "(() => { const i = document.querySelector('#snapshot-img');"
                           " return i && i.complete && i.naturalWidth > 0; })()")
    assert page.inner_text("#job-state") == "succeeded"
    assert page.inner_text("#s-step") == "80 / 80" and page.inner_text("#s-progress") == "100%"
    assert page.is_visible("#use-model") and page.is_hidden("#cancel") and page.is_hidden("#retry")
    assert page.inner_text("#snap-step") == "step 80"
    assert len(page.query_selector_all("#snap-strip button")) >= 8
    wait_for_js(page, "document.querySelector('#logs').textContent.includes('succeeded')")
    assert "claimed" in page.inner_text("#events") and "succeeded" in page.inner_text("#events")
    # the snapshots say what they are: training images (jobs have no held-out folder)
    assert "not held out" in page.inner_text("#snap-help") and "shapes" in page.inner_text("#snap-help")
    assert "held-out images" not in page.inner_text("#snap-help").lower()
    page.screenshot(path=str(ARTIFACTS / "train-job.png"), full_page=True)

    # "Reconstruct with it" opens the Reconstruct page with this job's model selected
    checkpoint = page.evaluate("document.querySelector('#use-model').getAttribute('href')")
    assert checkpoint == f"/?model={done_id}"
    page.click("#use-model")
    page.wait_for_selector("#view-single .fig-row img[src^='data:']", timeout=30000)
    assert page.input_value("#model-select") == done_id
    assert page.is_hidden("#banner [data-kind=link]")
    assert "model=" + done_id in page.url
    # this server has no default checkpoint, so the Reconstruct page's GET /api/ready answers 503
    assert [p for p in page.problems if "status of 503" not in p] == []
