"""Load test of ``POST /reconstruct``: concurrent clients sending a mix of valid and hostile requests.

Targets the loopback interface only: either a server you started (``--url http://127.0.0.1:PORT``)
or one it starts itself (``mae serve`` with a tiny random-init 64 px checkpoint, a small queue so
load shedding shows, and a 256 KiB body limit). Every response is checked: the status expected for
its input (or 503), a well-formed body (``ReconstructResponse`` JSON, a PNG, or the JSON error
shape), and ``Retry-After`` / ``Retry-After-Ms`` on every 503. Prints a table and writes JSON.
Not a timed test: nothing fails on speed.

    python -m mae_tools.loadtest                          # 16 clients x 200 requests, own server
    python -m mae_tools.loadtest --clients 16 --requests 50 --queue-size 8
    python -m mae_tools.loadtest --url http://127.0.0.1:8000 --requests 20
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image

from mae_core.runs import default_bench_dir

from app.schemas import ReconstructResponse
from mae_tools.testing import (
    ServerProcess, percentile, png_bytes, raw_png, reconstruct_form, synthetic_photo, write_checkpoint,
)

log = logging.getLogger("mae_tools.loadtest")

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_CLIENTS = 64
MAX_REQUESTS_PER_CLIENT = 10_000


@dataclass(frozen=True)
class Kind:
    """One kind of request and the statuses it may get besides 503."""

    name: str
    expect: int
    image: bytes
    fields: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/octet-stream"
    accept: str = "application/json"


def request_kinds(max_upload_bytes: int) -> list[Kind]:
    """The mix, in the order clients cycle through it: about half valid, half hostile."""
    photo = synthetic_photo(96, 80)
    jpeg = io.BytesIO()
    photo.save(jpeg, format="JPEG", quality=90)
    cmyk = io.BytesIO()
    photo.convert("CMYK").save(cmyk, format="JPEG")
    grey16 = Image.fromarray((np.asarray(photo.convert("L"), np.uint16) * 257))
    png = png_bytes(photo)
    rng = np.random.default_rng(0)
    return [
        Kind("png", 200, png, {"seed": "1"}),
        Kind("garbage", 400, rng.bytes(2048)),
        Kind("jpeg_as_png_figure", 200, jpeg.getvalue(), {"mask_ratio": "0.5"}, accept="image/png"),
        Kind("nan_ratio", 422, png, {"mask_ratio": "nan"}),
        Kind("cmyk_jpeg", 200, cmyk.getvalue(), {"strategy": "block"}),
        Kind("truncated_png", 400, png[: len(png) // 2]),
        Kind("grey16_png", 200, png_bytes(grey16), {"resize": "keep-aspect"}),
        Kind("unknown_strategy", 422, png, {"strategy": "spiral"}),
        Kind("png_random_seed", 200, png),
        Kind("traversal_model", 422, png, {"model": "../../etc/passwd"}),
        Kind("png_grid", 200, png, {"strategy": "grid"}),
        Kind("svg", 415, b"<svg xmlns='http://www.w3.org/2000/svg'/>", content_type="image/svg+xml"),
        Kind("png_explicit_mask", 200, png, {"mask": json.dumps([[1, 0, 1, 1]] * 4)}),
        Kind("bomb_header", 413, raw_png(100_000, 100_000)),
        Kind("oversize_body", 413, b"\0" * (max_upload_bytes + 1)),
        Kind("huge_seed", 422, png, {"seed": str(2**64)}),
    ]


@dataclass
class Outcome:
    kind: str
    status: int | None
    ms: float
    problem: str | None = None


def check_response(kind: Kind, resp: httpx.Response) -> str | None:
    """What is wrong with ``resp`` for a request of ``kind``, or None."""
    status = resp.status_code
    if status != kind.expect and status != 503:
        return f"status {status}, expected {kind.expect} or 503: {resp.text[:200]}"
    if status == 200 and kind.accept == "image/png":
        if resp.headers.get("content-type") != "image/png" or not resp.content.startswith(b"\x89PNG"):
            return "200 without a PNG body"
        return None
    try:
        body = resp.json()
    except ValueError:
        return f"{status} body is not JSON: {resp.text[:120]!r}"
    if status == 200:
        try:
            parsed = ReconstructResponse.model_validate(body)
        except ValueError as exc:
            return f"200 body does not match ReconstructResponse: {str(exc)[:200]}"
        if not parsed.panels.original.startswith("iVBORw0KGgo"):
            return "panel is not a base64 PNG"
        return None
    if not (isinstance(body, dict) and body.get("status") == status and isinstance(body.get("error"), str)
            and isinstance(body.get("message"), str) and body["message"]):
        return f"{status} error body malformed: {body!r:.200}"
    if status == 503:
        try:
            seconds = int(resp.headers["retry-after"])
            millis = int(resp.headers["retry-after-ms"])
        except (KeyError, ValueError):
            return "503 without integer Retry-After and Retry-After-Ms"
        if seconds < 1 or millis < 1 or seconds * 1000 < millis:
            return f"503 with inconsistent Retry-After {seconds} s / {millis} ms"
    return None


def _client_loop(base_url: str, kinds: list[Kind], offset: int, count: int, deadline: float,
                 out: list[Outcome]) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for i in range(count):
            if time.monotonic() > deadline:
                return
            kind = kinds[(offset + i) % len(kinds)]
            start = time.perf_counter()
            try:
                resp = client.post("/reconstruct", headers={"Accept": kind.accept},
                                   **reconstruct_form(kind.image, content_type=kind.content_type,
                                                      **kind.fields))
            except httpx.TransportError as exc:
                out.append(Outcome(kind.name, None, (time.perf_counter() - start) * 1000,
                                   f"transport error: {type(exc).__name__}: {exc}"))
                continue
            ms = (time.perf_counter() - start) * 1000
            out.append(Outcome(kind.name, resp.status_code, ms, check_response(kind, resp)))


def _latency(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": round(percentile(values, 0.5), 2), "p99": round(percentile(values, 0.99), 2),
            "mean": round(statistics.fmean(values), 2), "max": round(max(values), 2)}


@dataclass
class LoadConfig:
    """What to run. ``url`` None starts a server (tiny model, ``queue_size``, ``max_upload_bytes``)."""

    clients: int = 16
    requests: int = 200  # per client
    url: str | None = None
    queue_size: int = 4
    max_upload_bytes: int = 256 * 1024
    max_seconds: float = 300.0
    warmup: int = 1  # requests per kind before timing (own server: also the memory baseline)


def run(config: LoadConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the load test and return the result dictionary (see module docstring)."""
    if not 1 <= config.clients <= MAX_CLIENTS or not 1 <= config.requests <= MAX_REQUESTS_PER_CLIENT:
        raise ValueError(f"use 1..{MAX_CLIENTS} clients and 1..{MAX_REQUESTS_PER_CLIENT} requests each")
    say = progress or (lambda _msg: None)
    if config.url is not None:
        host = urlparse(config.url).hostname
        if host not in LOOPBACK:
            raise ValueError(f"the load test only targets the loopback interface, not {host!r}")
        return run_against(config.url, config, None, say)
    with tempfile.TemporaryDirectory(prefix="mae-loadtest-") as scratch:
        write_checkpoint(scratch, "loadtest-tiny")
        env = {"MAE_QUEUE_SIZE": str(config.queue_size), "MAE_MAX_UPLOAD_BYTES": str(config.max_upload_bytes),
               "MAE_DATA_DIR": str(Path(scratch) / "data")}
        with ServerProcess(scratch, "loadtest-tiny", env=env) as server:
            say("starting mae serve ...")
            server.wait_ready()
            return run_against(server.url, config, server, say)


def run_against(url: str, config: LoadConfig, server: ServerProcess | None = None,
                say: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Run the mix against ``url``; ``server`` (when this process started it) adds its memory."""
    kinds = request_kinds(config.max_upload_bytes)
    warm: list[Outcome] = []
    _client_loop(url, kinds, 0, config.warmup * len(kinds), time.monotonic() + 120, warm)
    rss_start = server.rss_bytes() if server else None
    per_client: list[list[Outcome]] = [[] for _ in range(config.clients)]
    deadline = time.monotonic() + config.max_seconds
    say(f"{config.clients} clients x {config.requests} requests against {url} ...")
    threads = [threading.Thread(target=_client_loop,
                                args=(url, kinds, c * 7, config.requests, deadline, per_client[c]))
               for c in range(config.clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    outcomes = [o for part in per_client for o in part]
    rss_end = server.rss_bytes() if server else None
    statuses = Counter(str(o.status) for o in outcomes)
    problems = [f"{o.kind}: {o.problem}" for o in warm + outcomes if o.problem]
    result = {
        "benchmark": "loadtest",
        "url": url,
        "own_server": server is not None,
        "clients": config.clients,
        "requests_per_client": config.requests,
        "requests": len(outcomes),
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(outcomes) / wall, 1) if wall else 0.0,
        "status_counts": dict(sorted(statuses.items())),
        "count_503": statuses.get("503", 0),
        "count_5xx_other": sum(n for s, n in statuses.items() if s.startswith("5") and s != "503"),
        "transport_errors": sum(1 for o in outcomes if o.status is None),
        "problems": len(problems),
        "problem_examples": problems[:10],
        "latency_ms": _latency([o.ms for o in outcomes]),
        "latency_ms_200": _latency([o.ms for o in outcomes if o.status == 200]),
        "latency_ms_503": _latency([o.ms for o in outcomes if o.status == 503]),
        "by_kind": {k.name: dict(Counter(str(o.status) for o in outcomes if o.kind == k.name))
                    for k in kinds},
        "config": asdict(config),
        "server_rss_mb": None if rss_start is None else {
            "after_warmup": round(rss_start / 2**20, 1), "end": round(rss_end / 2**20, 1),
            "growth": round((rss_end - rss_start) / 2**20, 1)},
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    return result


# ------------------------------------------------------------ hostile connections (raw sockets)
MAX_FLOOD_BYTES = 128 * 2**20
MAX_SLOW_CLIENTS = 256


def _loopback_address(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    if parsed.hostname not in LOOPBACK:
        raise ValueError(f"hostile clients only target the loopback interface, not {parsed.hostname!r}")
    return parsed.hostname, parsed.port or 80


def header_flood(url: str, total_bytes: int = 16 * 2**20, line: bytes = b"X-h: v\r\n") -> dict[str, Any]:
    """One connection sending ``GET /api/health`` followed by ``total_bytes`` of header lines
    (at most 128 MiB); returns the status line the server answered (or None) and how many
    bytes it took before the server answered or closed."""
    import socket

    if not 0 < total_bytes <= MAX_FLOOD_BYTES:
        raise ValueError(f"flood 1..{MAX_FLOOD_BYTES} bytes")
    host, port = _loopback_address(url)
    block = line * (65536 // len(line))
    sent, answer = 0, b""
    with socket.create_connection((host, port), timeout=30) as sock:
        try:
            sock.sendall(f"GET /api/health HTTP/1.1\r\nHost: {host}:{port}\r\n".encode())
            while sent < total_bytes:
                sock.sendall(block)
                sent += len(block)
            sock.sendall(b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused part-way: what it answered is read below
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    status = answer.split(b"\r\n", 1)[0].decode("latin-1") if answer else None
    return {"status_line": status, "bytes_sent": sent}


def slow_body_clients(url: str, clients: int, seconds: float, path: str = "/reconstruct") -> list[str | None]:
    """``clients`` connections that declare a 1 MB body, send one byte, then nothing for up to
    ``seconds``; returns each one's status line (None if the server said nothing)."""
    import socket

    if not 1 <= clients <= MAX_SLOW_CLIENTS or not 0 < seconds <= 120:
        raise ValueError(f"use 1..{MAX_SLOW_CLIENTS} clients for at most 120 s")
    host, port = _loopback_address(url)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: multipart/form-data; "
            "boundary=x\r\nContent-Length: 1000000\r\n\r\n-").encode()
    socks = []
    for _ in range(clients):
        sock = socket.create_connection((host, port), timeout=seconds)
        sock.sendall(head)
        socks.append(sock)
    results: list[str | None] = []
    for sock in socks:
        try:
            answer = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            answer = b""
        finally:
            sock.close()
        results.append(answer.split(b"\r\n", 1)[0].decode("latin-1") if answer else None)
    return results


def print_table(result: dict[str, Any]) -> None:
    lat = result["latency_ms"]
    print(f"\nload test: {result['url']} ({'own tiny-model server' if result['own_server'] else 'given server'})")
    print(f"{'requests':<22}{result['requests']}")
    print(f"{'concurrency':<22}{result['clients']} clients")
    print(f"{'wall':<22}{result['wall_s']} s ({result['throughput_rps']} req/s)")
    print(f"{'statuses':<22}{result['status_counts']}")
    print(f"{'503 (load shed)':<22}{result['count_503']}")
    print(f"{'other 5xx':<22}{result['count_5xx_other']}")
    print(f"{'transport errors':<22}{result['transport_errors']}")
    print(f"{'malformed/unexpected':<22}{result['problems']}")
    print(f"{'latency p50 / p99':<22}{lat.get('p50')} / {lat.get('p99')} ms (all responses)")
    ok = result["latency_ms_200"]
    if ok:
        print(f"{'200 only p50 / p99':<22}{ok['p50']} / {ok['p99']} ms")
    if result["server_rss_mb"]:
        rss = result["server_rss_mb"]
        print(f"{'server RSS':<22}{rss['after_warmup']} -> {rss['end']} MB ({rss['growth']:+} MB)")
    for example in result["problem_examples"]:
        print("  problem:", example)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mae_tools.loadtest", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None,
                        help="a running server on 127.0.0.1/localhost (default: start one)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--requests", type=int, default=200, help="requests per client (default 200)")
    parser.add_argument("--queue-size", type=int, default=4,
                        help="MAE_QUEUE_SIZE of the server it starts (default 4, so 503s show)")
    parser.add_argument("--max-upload-bytes", type=int, default=256 * 1024,
                        help="MAE_MAX_UPLOAD_BYTES of the server it starts; with --url, set it to "
                        "that server's limit (the oversize requests are one byte over it; "
                        "default 262144)")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="clients stop sending after this long (default 300)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default $MAE_BENCH_DIR or var/bench-results/loadtest.json)")
    args = parser.parse_args(argv)
    args.out = args.out or default_bench_dir() / "loadtest.json"
    logging.basicConfig(level=logging.WARNING)
    config = LoadConfig(clients=args.clients, requests=args.requests, url=args.url,
                        queue_size=args.queue_size, max_upload_bytes=args.max_upload_bytes,
                        max_seconds=args.max_seconds)
    try:
        result = run(config, progress=print)
    except ValueError as exc:
        parser.error(str(exc))
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if result["count_5xx_other"] == 0 and result["problems"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
