"""/docs (Swagger UI) and /redoc render in Chromium with no request outside the server."""

from __future__ import annotations

import pytest

from app.routers.jobs import JOB_REQUESTS
from mae_tools.testing import ServerProcess, write_checkpoint
from support.browser_helpers import watched_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    write_checkpoint(folder, "docs-test")
    with ServerProcess(folder, "docs-test", args=["--device", "cpu"]) as srv:
        srv.wait_ready()
        yield srv.url


def test_swagger_ui_renders_the_operations_offline(browser, server):
    with watched_page(browser, server, viewport={"width": 1400, "height": 900}) as page:
        page.goto(server + "/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=20000)
        paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.textContent)")
        assert "/reconstruct" in paths and "/api/models" in paths
        # every job kind's request model is listed among the schemas (POST /api/jobs: oneOf them)
        models = page.eval_on_selector_all(".models .json-schema-2020-12__title",
                                           "els => els.map(e => e.textContent)")
        assert {m.__name__ for m in JOB_REQUESTS.values()} <= set(models), models
        assert page.locator(".swagger-ui .info .title").inner_text().startswith("MAE Lab")
        # the stylesheet applied (an unstyled page would have the default serif body font)
        assert page.eval_on_selector(".swagger-ui .info .title", "e => getComputedStyle(e).fontFamily") \
            != "Times New Roman"
        assert page.problems == []


def test_redoc_renders_the_operations_offline(browser, server):
    with watched_page(browser, server, viewport={"width": 1400, "height": 900}) as page:
        page.goto(server + "/redoc")
        page.wait_for_selector("h1:has-text('MAE Lab')", timeout=20000)
        page.wait_for_selector("h2:has-text('Reconstruct')", timeout=20000)
        assert "/reconstruct" in page.inner_text("body")
        assert page.problems == []
