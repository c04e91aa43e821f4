"""A local HTTP file host for download tests: single-range requests, optional throttling and a
connection cut once after N bytes (an interrupted download), on 127.0.0.1 only."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


class FileHost:
    """Serves ``files`` (URL path → bytes). ``ranges_seen`` records each request's Range header."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges_seen: list[str | None] = []
        self.cut_after: int | None = None  # close the next response after this many bytes
        self.delay_per_chunk_s = 0.0
        self.chunk = 16 * 1024
        self.url = ""

    def add(self, path: str, data: bytes) -> str:
        self.files["/" + path.lstrip("/")] = data
        return f"{self.url}/{path.lstrip('/')}"


def _handler(host: FileHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            host.ranges_seen.append(self.headers.get("Range"))
            data = host.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if self.headers.get("Range"):
                start = int(self.headers["Range"].split("=")[1].split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            cut, host.cut_after = host.cut_after, None
            sent = 0
            for offset in range(start, len(data), host.chunk):
                block = data[offset:offset + host.chunk]
                if cut is not None and sent + len(block) > cut:
                    self.wfile.write(block[:cut - sent])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(block)
                self.wfile.flush()
                sent += len(block)
                time.sleep(host.delay_per_chunk_s)

    return Handler


@contextmanager
def file_host() -> Iterator[FileHost]:
    host = FileHost()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(host))
    host.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()


def official_pth_bytes(tmp: Path, seed: int = 0) -> bytes:
    """A tiny MAE saved in the official facebookresearch/mae .pth layout."""
    import torch

    from mae_core import create_model
    from mae_core.checkpoint.export import export_official

    torch.manual_seed(seed)
    model = create_model("mae_vit_tiny_patch16", img_size=64, embed_dim=64, depth=2, num_heads=4,
                         decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4)
    return export_official(model, tmp / f"tiny-{seed}.pth").read_bytes()


class _RunsCode:
    """Unpickling this runs a shell command: what a hostile checkpoint does."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"echo pwned > {self.marker}",))


def malicious_pickle_bytes(marker: str) -> bytes:
    """An official-looking ``{"model": ...}`` pickle that writes ``marker`` if it is ever loaded."""
    import io
    import pickle

    buffer = io.BytesIO()
    pickle.dump({"model": _RunsCode(marker)}, buffer)
    return buffer.getvalue()
