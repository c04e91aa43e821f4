"""Hostile connections against a real ``mae serve`` on 127.0.0.1 (issue 15, items 3, 5, 14):
header floods get 431 with memory flat, stalled bodies get 408, hold no handling slot meanwhile
and are capped by MAE_MAX_RECEIVING, and answers sent while draining close the connection."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time

import httpx
import pytest

from app.admission import Admission, AdmissionMiddleware
from mae_tools.loadtest import header_flood, slow_body_clients
from mae_tools.testing import ServerProcess, png_bytes, reconstruct_form, synthetic_photo, write_checkpoint

pytestmark = pytest.mark.slow
IN_FLIGHT = 2
RECEIVING = IN_FLIGHT + 2
IDLE_S = 4.0  # long enough for the requests made while bodies stall


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    write_checkpoint(folder, "tiny")
    env = {"MAE_MAX_IN_FLIGHT": str(IN_FLIGHT), "MAE_MAX_RECEIVING": str(RECEIVING),
           "MAE_BODY_IDLE_TIMEOUT_S": str(IDLE_S),
           "MAE_DATA_DIR": str(folder / "data")}
    with ServerProcess(folder, "tiny", env=env) as srv:
        srv.wait_ready()
        yield srv


def test_header_flood_gets_431_and_memory_stays_flat(server):
    before = server.rss_bytes()
    result = header_flood(server.url, 32 * 2**20)
    assert result["status_line"] == "HTTP/1.1 431 Request Header Fields Too Large", result
    assert result["bytes_sent"] < 32 * 2**20, "the server read the whole flood"
    assert (server.rss_bytes() - before) < 20 * 2**20
    many = header_flood(server.url, 101 * 8, line=b"X-a: 1\r\n")  # 101 short lines: over MAE_MAX_HEADERS
    assert many["status_line"].startswith("HTTP/1.1 431"), many
    assert httpx.get(server.url + "/api/health", headers={"X-ok": "1"}).status_code == 200


def test_stalled_bodies_get_408_and_do_not_hold_the_slots(server):
    started = time.monotonic()
    statuses = slow_body_clients(server.url, IN_FLIGHT, seconds=10)
    assert all(s is not None and s.startswith("HTTP/1.1 408") for s in statuses), statuses
    assert time.monotonic() - started < IDLE_S + 5
    assert httpx.get(server.url + "/api/ready", timeout=10).status_code == 200


def stalled_upload(port: int) -> socket.socket:
    """A connection that declares a 1 MB upload, sends one byte of it and then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST /reconstruct HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
                 "multipart/form-data; boundary=x\r\nContent-Length: 1000000\r\n\r\n-".encode())
    return sock


def read_answer(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):  # the server closes the connection after the answer
        answer += chunk
    return answer


def test_idle_uploads_hold_no_handling_slot_and_are_capped_apart(server):
    stalled = [stalled_upload(server.port) for _ in range(IN_FLIGHT + 1)]  # more than the slots
    try:
        time.sleep(0.3)
        assert httpx.get(server.url + "/api/models", timeout=10).status_code == 200
        photo = png_bytes(synthetic_photo(64, 64))
        resp = httpx.post(server.url + "/reconstruct", **reconstruct_form(photo, seed=1), timeout=30)
        assert resp.status_code == 200, resp.text[:300]
        stalled.append(stalled_upload(server.port))  # the last MAE_MAX_RECEIVING slot
        time.sleep(0.3)
        started = time.monotonic()
        with stalled_upload(server.port) as extra:  # one upload too many: refused at once
            answer = read_answer(extra)
        assert time.monotonic() - started < 2
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        error = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert error["error"] == "overloaded" and "MAE_MAX_RECEIVING" in error["message"]
        assert not select.select(stalled, [], [], 0)[0], "a stalled upload was answered already"
        assert all(read_answer(s).startswith(b"HTTP/1.1 408") for s in stalled)
    finally:
        for sock in stalled:
            sock.close()
    assert httpx.post(server.url + "/reconstruct", **reconstruct_form(photo, seed=2), timeout=30).status_code == 200


def test_answers_while_draining_say_connection_close():
    admission = Admission(8, 8)

    async def app(scope, receive, send):
        admission.start_draining()  # SIGTERM arrives while this request runs
        await send({"type": "http.response.start", "status": 200, "headers": [(b"connection", b"keep-alive")]})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(AdmissionMiddleware(app, admission)({"type": "http", "method": "GET", "path": "/"}, receive, send))
    assert sent[0]["headers"] == [(b"connection", b"close")]
