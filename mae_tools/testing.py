"""Helpers for tests and benchmarks: random-init checkpoints, synthetic photos, a server process.

Nothing here downloads anything; checkpoints are randomly initialised and only good for
exercising the service (their reconstructions are noise).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from mae_core import create_model, save_model

TINY_64 = dict(img_size=64, embed_dim=64, depth=2, num_heads=4, decoder_embed_dim=32,
               decoder_depth=1, decoder_num_heads=4)


def write_checkpoint(folder: str | Path, name: str, *, size: int = 64, norm_pix_loss: bool = False,
                     decoder: bool = True, seed: int = 0, card: dict[str, Any] | None = None) -> Path:
    """Save a randomly initialised ``mae_vit_tiny_patch16`` as ``folder/name.safetensors``.

    ``size=64`` gives a very small model (4x4 grid); ``size=224`` the full tiny preset (14x14).
    """
    torch.manual_seed(seed)
    overrides: dict[str, Any] = dict(TINY_64) if size == 64 else {"img_size": size}
    model = create_model("mae_vit_tiny_patch16", norm_pix_loss=norm_pix_loss, has_decoder=decoder,
                         **overrides).eval()
    card = card or {"data": {"description": "none (random initialisation, for tests)"},
                    "training": {"note": "random init"}}
    return save_model(model, Path(folder) / f"{name}.safetensors", card)


def synthetic_photo(width: int = 96, height: int = 80, seed: int = 0) -> Image.Image:
    """A smooth RGB test picture: gradients, a disc and a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    r = xx / max(1, width - 1) * 255
    g = yy / max(1, height - 1) * 255
    disc = (xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (min(width, height) / 4) ** 2
    b = np.where(disc, 220, 40)
    arr = np.stack([r, g, b], -1) + rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    """One PNG chunk; ``crc`` overrides the checksum (to write a broken one)."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def raw_png(width: int, height: int, *, bit_depth: int = 8, color_type: int = 0,
            rows: bytes | None = None, idat: bytes | None = None, interlace: int = 0,
            extra: tuple[bytes, ...] = ()) -> bytes:
    """A PNG with any header, written by hand (Pillow refuses absurd sizes). ``rows`` are filtered
    scanlines (compressed here); ``idat`` is used as the compressed stream as is; with neither,
    a header-only file with an empty IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    stream = idat if idat is not None else zlib.compress(rows if rows is not None else b"", 9)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + b"".join(extra)
            + png_chunk(b"IDAT", stream) + png_chunk(b"IEND", b""))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (0 <= q <= 1) of a non-empty sequence."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``mae serve`` in a subprocess on 127.0.0.1, so client and server do not share a GIL.

    Use as a context manager; ``wait_ready()`` blocks until ``/api/ready`` answers 200 and fails
    fast if the process exits. ``env`` adds ``MAE_*`` settings (or OMP_NUM_THREADS, ...).
    """

    def __init__(self, folder: str | Path, model_id: str, *, port: int | None = None,
                 env: dict[str, str] | None = None, args: Sequence[str] = (),
                 log_level: str = "WARNING") -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "mae_cli", "--log-level", log_level, "serve",
                    "--host", "127.0.0.1", "--port", str(self.port), "--checkpoint-dir", str(folder),
                    "--default-model", model_id, *args]
        self.env = {**os.environ, **(env or {})}
        # the folder holding the mae_cli package: `python -m` imports this very code from there
        self.cwd = Path(__file__).resolve().parent.parent
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "ServerProcess":
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def wait_ready(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"mae serve exited with code {code} before it was ready")
            try:
                if httpx.get(f"{self.url}/api/ready", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"mae serve was not ready within {timeout:.0f} s")

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS not found")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def reconstruct_form(image: bytes, *, filename: str = "upload.png",
                     content_type: str = "application/octet-stream",
                     **fields: Any) -> dict[str, Any]:
    """``files=``/``data=`` keyword arguments for ``POST /reconstruct`` with an httpx client."""
    return {"files": {"image": (filename, image, content_type)},
            "data": {k: str(v) for k, v in fields.items()}}


def call_asgi(app: Any, method: str, path: str, headers: dict[str, str],
              chunks: Sequence[bytes], before_last: Callable[[], None] | None = None) -> dict[str, Any]:
    """Drive ``app`` with one raw ASGI HTTP request whose body arrives in ``chunks``;
    ``before_last()`` runs when the app asks for the last chunk, before it gets it.

    Returns ``status``, ``headers``, ``body`` and ``chunks_read`` (how many body messages the app
    pulled), so a test can tell whether a body was read at all. The app's lifespan is not run.
    """
    import anyio

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    out: dict[str, Any] = {"status": None, "headers": {}, "body": b"", "chunks_read": 0}
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        if not pending:
            await anyio.sleep(3600)  # a client that sends nothing more
        if len(pending) == 1 and before_last is not None:
            before_last()
        out["chunks_read"] += 1
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    async def main() -> None:
        with anyio.fail_after(30):
            await app(scope, receive, send)

    anyio.run(main)
    return out
