"""Headless Chromium for the browser tests: Debian's package driven by Playwright.

Playwright's own browser download does not work on these machines, so the tests point it at the
`chromium` binary on PATH. A missing browser is a failure, never a skip (scripts/test.sh installs
it).
"""

import shutil
from contextlib import contextmanager

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextmanager
def watched_page(browser, base_url: str, **context_options):
    """A page in a fresh context that records page errors, console errors and any request
    leaving ``base_url`` in ``page.problems`` (the tests assert it stays empty)."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
    page.on("request", lambda req: req.url.startswith((base_url, "data:", "blob:"))
            or problems.append(f"outside request: {req.url}"))
    page.problems = problems
    try:
        yield page
    finally:
        context.close()


@contextmanager
def launch_chromium():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("Chromium is not installed: apt-get install -y chromium (scripts/test.sh does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_for_js(page, expression: str, arg=None, timeout: float = 30_000, interval_s: float = 0.05):
    """``page.wait_for_function`` by polling ``page.evaluate``: the pages' CSP forbids eval, which
    Playwright's in-page polling uses, while ``evaluate`` (run through the debugger protocol) is
    not subject to the CSP. ``expression`` is an expression or a function taking ``arg``; errors
    the page throws (an element not there yet, a navigation) count as "not yet". Returns the
    truthy value; fails after ``timeout`` milliseconds."""
    import time

    from playwright.sync_api import Error

    deadline = time.monotonic() + timeout / 1000
    last_error = None
    while True:
        try:
            value = page.evaluate(expression, arg)
            if value:
                return value
        except Error as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout / 1000:g} s waiting for {expression!r}"
                                 + (f" (last error: {last_error})" if last_error else ""))
        time.sleep(interval_s)
