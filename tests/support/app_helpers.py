"""Shared helpers for tests that drive the web app in-process: polling and a gated worker."""

from __future__ import annotations

import threading
from typing import Any, Callable

from support.jobs_helpers import wait_until


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``predicate`` every 5 ms until it is truthy; fail after ``timeout`` seconds."""
    return wait_until(predicate, timeout, interval=0.005)


def gate_worker(app) -> threading.Event:
    """Make the inference worker block inside ``registry.get`` while the returned event is clear."""
    registry = app.state.registry
    gate = threading.Event()
    gate.set()
    real_get = registry.get

    def gated_get(model_id):
        assert gate.wait(30), "test gate never opened"
        return real_get(model_id)

    registry.get = gated_get
    return gate
