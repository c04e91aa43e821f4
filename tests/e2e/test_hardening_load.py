"""Load shedding in-process: a bounded inference queue, a cap on requests in flight, 503s with
Retry-After / Retry-After-Ms, and no memory growth while thousands of requests are refused."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from app import Settings, create_app
from app.batcher import Batcher, Job
from app.errors import QueueFullError
from app.registry import ModelRegistry
from mae_core.masking import MaskRequest
from mae_tools.testing import call_asgi, png_bytes, reconstruct_form, synthetic_photo, write_checkpoint
from support.app_helpers import gate_worker, wait_for

MODEL = "mae-lab-default"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("load") / "checkpoints"
    write_checkpoint(folder, MODEL)
    return folder


@contextmanager
def two_requests_held(app, client, gate: threading.Event, photo: bytes, until):
    """Two /reconstruct requests stuck at the gated worker once ``until()`` holds; on exit the
    gate opens and both finish."""
    wait_for(lambda: app.state.registry.default_state == "ready")
    gate.clear()
    held = [threading.Thread(target=client.post, args=("/reconstruct",),
                             kwargs=reconstruct_form(photo, seed=i)) for i in range(2)]
    for t in held:
        t.start()
    wait_for(until)
    try:
        yield
    finally:
        gate.set()
        for t in held:
            t.join(30)


def assert_retry_headers(resp) -> int:
    seconds = int(resp.headers["retry-after"])
    millis = int(resp.headers["retry-after-ms"])
    assert seconds >= 1 and millis >= 1 and seconds * 1000 >= millis
    return millis


# ------------------------------------------------------------------------ the queue
def test_the_queue_never_grows_past_its_bound(folder):
    registry = ModelRegistry(folder, MODEL)
    batcher = Batcher(registry, queue_size=8)
    gate = threading.Event()
    batcher.start(on_start=gate.wait)  # the worker is busy until the gate opens (no deadline)
    try:
        image = synthetic_photo(32, 32)
        accepted, refused = [], []
        for i in range(2000):
            try:
                accepted.append(batcher.submit(Job(model_id=MODEL, image=image, request=MaskRequest(seed=i))))
            except QueueFullError as exc:
                refused.append(exc.retry_after_ms)
            assert batcher.pending <= 8
        assert len(accepted) == 8 and len(refused) == 1992
        assert all(ms >= 50 for ms in refused)
        gate.set()
        for future in accepted:
            future.result(30)
        wait_for(lambda: batcher.pending == 0)
        batcher.submit(Job(model_id=MODEL, image=image, request=MaskRequest(seed=1))).result(30)  # room again
    finally:
        gate.set()
        batcher.stop()


def test_503_queue_full_with_retry_after_in_seconds_and_milliseconds(folder):
    app = create_app(Settings(checkpoint_dir=folder, queue_size=2))
    gate, photo = gate_worker(app), png_bytes(synthetic_photo())
    with TestClient(app) as client:
        with two_requests_held(app, client, gate, photo, lambda: app.state.batcher.pending == 2):
            resp = client.post("/reconstruct", **reconstruct_form(photo, seed=9))
            assert resp.status_code == 503 and resp.json()["error"] == "queue_full"
            assert_retry_headers(resp)
        assert client.post("/reconstruct", **reconstruct_form(photo, seed=9)).status_code == 200


# -------------------------------------------------------------------- requests in flight
def test_requests_past_the_in_flight_cap_get_503_before_their_body_is_read(folder):
    app = create_app(Settings(checkpoint_dir=folder, max_in_flight=2, queue_size=10))
    gate, photo = gate_worker(app), png_bytes(synthetic_photo())
    with TestClient(app) as client:
        with two_requests_held(app, client, gate, photo, lambda: app.state.admission.in_flight == 2):
            resp = client.post("/reconstruct", **reconstruct_form(photo, seed=9))
            assert resp.status_code == 503 and resp.json()["error"] == "overloaded"
            assert_retry_headers(resp)
            out = call_asgi(app, "POST", "/reconstruct",
                            {"content-type": "multipart/form-data; boundary=x",
                             "content-length": "5000000"}, [b"\0" * 65536] * 80)
            assert out["status"] == 503 and out["chunks_read"] == 0
            assert client.get("/api/health").status_code == 200  # liveness is never refused
            assert client.get("/api/models").status_code == 503
        wait_for(lambda: app.state.admission.in_flight == 0)
        assert client.post("/reconstruct", **reconstruct_form(photo, seed=9)).status_code == 200


def test_draining_refuses_everything_but_liveness(folder):
    app = create_app(Settings(checkpoint_dir=folder))
    with TestClient(app) as client:
        app.state.admission.start_draining()
        resp = client.post("/reconstruct", **reconstruct_form(png_bytes(synthetic_photo())))
        assert resp.status_code == 503 and resp.json()["error"] == "shutting_down"
        assert_retry_headers(resp)
        assert resp.headers["connection"] == "close"
        assert client.get("/").status_code == 503
        assert client.get("/api/ready").status_code == 503
        assert client.get("/api/health").status_code == 200


# ---------------------------------------------------------------------------- memory
def test_no_memory_growth_over_thousands_of_refused_requests(folder):
    """A full queue refuses 1000 uploads (decoded, then shed), mixed with 400s and 422s: no
    backlog builds up and Python-level memory does not grow."""
    app = create_app(Settings(checkpoint_dir=folder, queue_size=1))
    gate = gate_worker(app)
    photo = png_bytes(synthetic_photo())
    mix = [reconstruct_form(photo, seed=1), reconstruct_form(b"garbage" * 100),
           reconstruct_form(photo, mask_ratio="nan"), reconstruct_form(photo, seed=2)]
    expected = [503, 400, 422, 503]
    with TestClient(app) as client:
        wait_for(lambda: app.state.registry.default_state == "ready")
        gate.clear()
        holder = threading.Thread(target=client.post, args=("/reconstruct",),
                                  kwargs=reconstruct_form(photo, seed=0))
        holder.start()
        wait_for(lambda: app.state.batcher.pending == 1)

        def burst(n):
            for i in range(n):
                resp = client.post("/reconstruct", **mix[i % 4])
                assert resp.status_code == expected[i % 4], resp.text[:200]
                assert app.state.batcher.pending == 1

        try:
            burst(200)  # warm every path (caches, pools)
            gc.collect()
            tracemalloc.start()
            try:
                burst(1000)
                gc.collect()
                grown, _peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        finally:
            gate.set()
        holder.join(30)
    assert grown < 1_000_000, f"{grown / 1e6:.2f} MB still allocated after 1000 refused requests"
