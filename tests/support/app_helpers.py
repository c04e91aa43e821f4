"""Shared helpers for tests that drive the web app in-process: polling and a gated worker."""

from __future__ import annotations

import threading
from typing import Any, Callable

from support.jobs_helpers import wait_until


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``predicate`` every 5 ms until it is truthy; fail after ``timeout`` seconds."""
    return wait_until(predicate, timeout, interval=0.005)


def gate_worker(app) -> threading.Event:
    """Make the inference worker block inside ``registry.get`` while the returned event is clear.

    The gate has no deadline (a held request must not be released by a slow machine); it lets
    go when the test opens it, or when the app's lifespan has ended (a test that failed while
    holding it), so a failing test never leaves the worker stuck.
    """
    registry = app.state.registry
    gate = threading.Event()
    gate.set()
    real_get = registry.get

    def gated_get(model_id):
        while not gate.wait(0.05):
            if app.state.batcher is None:
                break  # the lifespan has ended: the gated worker runs only inside it
        return real_get(model_id)

    registry.get = gated_get
    return gate
