"""The Train page's evaluation form in headless Chromium against real `mae serve` + `mae worker`
processes: the protocol's fields come from the server's tables, a k-NN job is queued from the
form, a worker runs it and the job page shows its top-1 and confusion matrix; and the pretraining
form's lr hint starting from that server's checkpoint (the continued-pretraining lr)."""

from __future__ import annotations

import pytest

from mae_core.train.config import RECIPES
from mae_core.train.init import CONTINUE_LR, continue_lr_note
from mae_tools.testing import write_checkpoint
from support.browser_helpers import wait_for_js, watched_page
from support.jobs_helpers import serve_until_healthy, start_mae, stop, subprocess_env
from support.labelled_images import make_labelled

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-eval")
    images, data, checkpoints = root / "images", root / "data", root / "checkpoints"
    make_labelled(images / "colours", per_class=10)
    write_checkpoint(checkpoints, "mae-lab-default")
    env = subprocess_env(MAE_DATA_ROOTS=str(images), MAE_CHECKPOINT_DIR=str(checkpoints), MAE_DEVICE="cpu")
    serve, base, http = serve_until_healthy(root, data, env)
    try:
        yield base, root, data, env
    finally:
        stop(serve)
        http.close()


def test_a_knn_job_queued_from_the_form_runs_and_shows_its_result(browser, server):
    base, root, data, env = server
    with watched_page(browser, base, viewport={"width": 1360, "height": 900}) as page:
        page.goto(base + "/train")
        page.wait_for_selector("#eval-form #e-k")  # k-NN is the first protocol
        assert page.eval_on_selector_all("#e-dataset option", "os => os.map(o => o.value)") == ["colours"]
        assert page.get_attribute("#e-k", "min") == "1"  # bounds from the server's field table
        page.select_option("#e-kind", "finetune")
        wait_for_js(page, "!!document.querySelector('#e-tune_blocks')")
        assert not page.query_selector("#e-k")
        page.select_option("#e-kind", "knn")
        wait_for_js(page, "!!document.querySelector('#e-k')")
        page.fill("#e-k", "0")
        page.click("#e-submit")
        page.wait_for_selector("#eval-error:not([hidden])")
        assert "k: at least 1" in page.inner_text("#eval-error")
        page.fill("#e-k", "3")
        page.fill("#e-val_every", "2")
        page.click("#e-submit")
        link = page.wait_for_selector("#eval-status a")
        job_id = link.inner_text()
        page.wait_for_selector(f"tr[data-job='{job_id}']")
        assert "knn · mae-lab-default · colours" in page.inner_text(f"tr[data-job='{job_id}']")

        worker = start_mae(["worker", "--data-dir", str(data), "--poll-interval", "0.2", "--exit-when-idle"],
                           root / "worker.log", env)
        assert worker.wait(180) == 0, (root / "worker.log").read_text()[-2000:]
        link.click()
        page.wait_for_selector("#eval-top [data-metric='Top-1']")
        assert page.inner_text("#eval-top [data-metric='Top-1']") == "100.0%"  # two distinct colours
        assert page.eval_on_selector_all("#eval-confusion tr", "rs => rs.length") == 3  # header + 2 classes
        assert not page.problems, page.problems


def test_the_train_forms_empty_lr_says_the_continue_lr_from_a_checkpoint(browser, server):
    base = server[0]
    with watched_page(browser, base, viewport={"width": 1360, "height": 900}) as page:
        page.goto(base + "/train")
        page.click(".advanced summary")
        assert page.input_value("#f-init") == "mae-lab-default"  # the form starts from the default
        assert page.get_attribute("#f-blr", "placeholder") == f"lr {CONTINUE_LR:g}"
        assert page.inner_text("#help-lr") == f"Empty: {continue_lr_note(RECIPES['cpu-demo'])}."
        page.select_option("#f-init", "")  # from scratch: the recipe's lr
        assert page.get_attribute("#f-blr", "placeholder") == "recipe"
        assert page.inner_text("#help-lr") == f"Empty: the recipe's lr {RECIPES['cpu-demo'].optim.lr}."
        page.select_option("#f-recipe", "paper")
        assert page.inner_text("#help-lr") == f"Empty: the recipe's base lr {RECIPES['paper'].optim.blr}."
        page.select_option("#f-init", "mae-lab-default")
        assert page.inner_text("#help-lr") == f"Empty: {continue_lr_note(RECIPES['paper'])}."
        assert not page.problems, page.problems
