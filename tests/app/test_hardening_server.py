"""Against a real ``mae serve`` subprocess on 127.0.0.1: oversized bodies over raw sockets, and the
load test (16 concurrent clients, mixed valid and hostile requests, a small queue)."""

from __future__ import annotations

import json
import select
import socket
import time

import pytest

from mae_tools.loadtest import LoadConfig, run_against
from mae_tools.testing import ServerProcess, write_checkpoint

pytestmark = pytest.mark.slow

LIMIT = 256 * 1024
CLIENTS = 16
REQUESTS = 40  # per client; the standalone `python -m mae_tools.loadtest` defaults to 200


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    write_checkpoint(folder, "tiny")
    env = {"MAE_QUEUE_SIZE": "4", "MAE_MAX_UPLOAD_BYTES": str(LIMIT),
           "MAE_DATA_DIR": str(folder / "data")}
    with ServerProcess(folder, "tiny", env=env) as srv:
        srv.wait_ready()
        yield srv


def exchange(port: int, head: bytes, body_chunks, seconds: float = 10.0) -> tuple[bytes, int, float]:
    """Send ``head`` then body chunks until the server answers; return (answer, body bytes sent,
    seconds until the first answer byte)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    started = time.monotonic()
    _send_all(sock, head, started + seconds)
    sent, answer, first = 0, b"", None
    chunks = iter(body_chunks)
    pending = b""
    try:
        while time.monotonic() < started + seconds:
            readable, writable, _ = select.select([sock], [sock] if first is None else [], [], 0.5)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                first = first or time.monotonic() - started
                answer += data
                continue
            if writable and first is None:
                if not pending:
                    pending = next(chunks, b"")
                    if not pending:
                        continue
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    pending = b""
                    continue
                sent += n
                pending = pending[n:]
    finally:
        sock.close()
    return answer, sent, first if first is not None else float("inf")


def _send_all(sock: socket.socket, data: bytes, deadline: float) -> None:
    while data and time.monotonic() < deadline:
        select.select([], [sock], [], 0.5)
        data = data[sock.send(data):]


def multipart_head(port: int, extra: str) -> bytes:
    return (f"POST /reconstruct HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\n{extra}\r\n").encode()


PART = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_honest_content_length_gets_413_without_sending_the_body(server):
    answer, sent, first = exchange(server.port, multipart_head(server.port, "Content-Length: 52428800\r\n"), [])
    assert status_of(answer) == 413 and sent == 0 and first < 2
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "too_large"


def test_chunked_and_lying_bodies_get_a_quick_answer_and_memory_stays_flat(server):
    before = server.rss_bytes()
    big = 32 * 2**20
    for _ in range(3):
        chunked = (b"%x\r\n%s\r\n" % (len(PART), PART) for _ in range(1))
        payload = (b"10000\r\n" + b"\0" * 0x10000 + b"\r\n" for _ in range(big // 0x10000))
        answer, sent, first = exchange(server.port, multipart_head(server.port, "Transfer-Encoding: chunked\r\n"),
                                       _chain(chunked, payload))
        assert status_of(answer) == 413 and first < 5, answer[:200]
        assert sent < big
        # a Content-Length that lies low: the parser reads that many bytes, the rest is refused
        answer, sent, first = exchange(server.port, multipart_head(server.port, "Content-Length: 1000\r\n"),
                                       [PART] + [b"\0" * 65536] * (big // 65536))
        assert answer and 400 <= status_of(answer) < 500 and first < 5, answer[:200]
    grown = (server.rss_bytes() - before) / 2**20
    assert grown < 20, f"server memory grew by {grown:.0f} MB"
    assert server.proc.poll() is None


def _chain(*iterables):
    for it in iterables:
        yield from it


def test_load_mixed_requests_16_clients(server, capsys):
    """Zero 5xx other than 503, every response well-formed, memory flat once warm."""
    run_against(server.url, LoadConfig(clients=CLIENTS, requests=8, max_upload_bytes=LIMIT), server)
    result = run_against(server.url, LoadConfig(clients=CLIENTS, requests=REQUESTS,
                                                max_upload_bytes=LIMIT, max_seconds=90), server)
    with capsys.disabled():
        lat = result["latency_ms"]
        print(f"\n[load test] {result['requests']} requests, {result['clients']} clients, "
              f"{result['count_503']} x 503, p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
              f"{result['throughput_rps']} req/s, statuses {result['status_counts']}, "
              f"RSS {result['server_rss_mb']}")
    assert result["requests"] == CLIENTS * REQUESTS
    assert result["count_5xx_other"] == 0
    assert result["transport_errors"] == 0
    assert result["problems"] == 0, result["problem_examples"]
    assert result["count_503"] > 0, "the small queue should have shed some load"
    assert result["status_counts"].get("200", 0) > 0
    for kind, counts in result["by_kind"].items():
        assert counts, kind
    assert result["server_rss_mb"]["growth"] < 25, result["server_rss_mb"]
    assert server.proc.poll() is None


# ------------------------------------------------------------------------------ shutdown
GRACE = 3.0


def test_sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_in_time(tmp_path):
    import signal

    import httpx

    from mae_tools.testing import png_bytes, reconstruct_form, synthetic_photo

    write_checkpoint(tmp_path, "tiny")
    env = {"MAE_SHUTDOWN_GRACE_S": str(GRACE), "MAE_DATA_DIR": str(tmp_path / "data")}
    image = png_bytes(synthetic_photo())
    body = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + image + b"\r\n--b--\r\n")
    head = multipart_head(0, f"Content-Length: {len(body)}\r\n")
    with ServerProcess(tmp_path, "tiny", env=env) as srv:
        srv.wait_ready()
        slow = socket.create_connection(("127.0.0.1", srv.port))
        stalled = socket.create_connection(("127.0.0.1", srv.port))
        for sock in (slow, stalled):
            sock.sendall(head + body[:50])  # in flight: headers and a little of the body
        time.sleep(0.5)
        srv.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.3)
        with httpx.Client(base_url=srv.url, timeout=5) as client:
            refused = client.post("/reconstruct", **reconstruct_form(image))
            assert refused.status_code == 503 and refused.json()["error"] == "shutting_down"
            assert int(refused.headers["retry-after"]) >= 1 and int(refused.headers["retry-after-ms"]) >= 1
            assert client.get("/api/ready").status_code == 503
            assert client.get("/api/health").status_code == 200  # alive while draining
        slow.sendall(body[50:])  # the in-flight request completes normally
        slow.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < 100:
            chunk = slow.recv(65536)
            if not chunk:
                break
            answer += chunk
        assert status_of(answer) == 200, answer[:300]
        code = srv.proc.wait(GRACE + 5)
        took = time.monotonic() - signalled
        stalled.settimeout(5)
        cut_short = stalled.recv(65536)  # never finished its body: cancelled at the deadline
        stalled.close()
        slow.close()
    assert status_of(cut_short) == 503 and b"shutting_down" in cut_short
    assert code == 0
    assert GRACE - 0.5 < took < GRACE + 1.5, f"exited {took:.1f} s after SIGTERM (grace {GRACE} s)"
