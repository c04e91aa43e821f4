"""Latency of ``POST /reconstruct`` against the bare ``Reconstructor.reconstruct`` call.

Runs ``mae serve`` (uvicorn) in a subprocess on a free port of 127.0.0.1 and, in the same run,
the library on the same image, checkpoint and precision, two ways:

- ``bare``: ``Reconstructor.reconstruct`` on the already decoded image (arrays out);
- ``library``: the work the server does, in-process: decode the uploaded bytes with the server's
  decoder, reconstruct, encode the four panels (PNG), so server minus library is what HTTP and
  the queue add.

Calls are interleaved (bare, library, JSON, ...) so load from other processes affects every
variant alike. The client is a plain keep-alive ``http.client`` connection, so little client CPU
competes with the server on small machines. Prints a table and writes JSON. Not a test: nothing
fails on speed.

    python -m mae_tools.serve_bench                       # default checkpoint, else a random-init ViT-Ti/16
    python -m mae_tools.serve_bench --checkpoint-dir checkpoints --model mae-lab-default -n 50
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import logging
import os
import platform
import statistics
import tempfile
import threading
import time
from datetime import datetime, timezone
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mae_core import Reconstructor, list_checkpoints
from mae_core.defaults import DEFAULT_CHECKPOINT_ID, checkpoint_folders
from mae_core.results import check_bench, write_result
from mae_core.runs import default_bench_dir
from mae_core.figure import encode_image
from mae_core.precision import PRECISIONS

from app.images import decode_image

from mae_tools.testing import ServerProcess, percentile

log = logging.getLogger("mae_tools.serve_bench")


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(values, 0.5), "p90_ms": percentile(values, 0.9),
            "mean_ms": statistics.fmean(values), "min_ms": min(values), "n": len(values)}


def _pick_checkpoint(folder: Path, model: str | None, scratch: Path) -> tuple[Path, str, Path, str]:
    """(folder, id, file, note): the requested/default checkpoint, else a random-init one."""
    infos = {i.id: i for i in list_checkpoints(folder) if i.can_reconstruct and not i.error}
    wanted = model or DEFAULT_CHECKPOINT_ID
    if wanted in infos:
        return folder, wanted, infos[wanted].path, str(infos[wanted].path)
    if model:
        raise SystemExit(f"no usable checkpoint {model!r} in {folder}")
    from mae_tools.testing import write_checkpoint

    path = write_checkpoint(scratch, "bench-random-224", size=224)
    return scratch, "bench-random-224", path, "random-init mae_vit_tiny_patch16 at 224 px (no default present)"


def _image_bytes(path: Path | None) -> tuple[bytes, str]:
    if path is not None:
        return path.read_bytes(), path.name
    from app.templating import STATIC_DIR

    samples = sorted((STATIC_DIR / "samples").glob("*.jpg"))
    if samples:
        return samples[0].read_bytes(), samples[0].name
    from mae_tools.testing import synthetic_photo

    buf = io.BytesIO()
    synthetic_photo(320, 240).save(buf, format="JPEG", quality=92)
    return buf.getvalue(), "synthetic.jpg"


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="mae-bench-"))
    folder, model_id, weights, source = _pick_checkpoint(Path(args.checkpoint_dir), args.model, scratch)
    data, image_name = _image_bytes(args.image)
    image = Image.open(io.BytesIO(data))
    image.load()

    bare = Reconstructor.from_checkpoint(weights, device=args.device, precision=args.precision)
    server = ServerProcess(folder, model_id, env=_server_env(args), args=["--device", args.device])
    times: dict[str, list[float]] = {"bare": [], "library": [], "post_json": [], "post_jpeg": [],
                                     "post_png": []}
    server_side: list[dict[str, float]] = []

    def library(seed: int) -> dict[str, bytes]:
        picture = decode_image(data, "image/jpeg", len(data), 10**9)
        rec = bare.reconstruct(picture, seed=seed)
        return {name: encode_image(panel, "png") for name, panel in rec.panels.items()}

    with server:
        try:
            server.wait_ready()
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        client = Client(server.port)

        def post(seed: int, accept: str, panel_format: str = "png") -> bytes:
            return client.reconstruct(data, image_name, seed, accept, panel_format)

        for i in range(args.warmup):
            bare.reconstruct(image, seed=i)
            library(i)
            post(i, "application/json")
            post(i, "image/png")
        for i in range(args.n):
            seed = 1000 + i
            t = time.perf_counter()
            rec = bare.reconstruct(image, seed=seed)
            times["bare"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            library(seed)
            times["library"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            body = json.loads(post(seed, "application/json"))
            times["post_json"].append((time.perf_counter() - t) * 1000)
            server_side.append({"inference_ms": body["metrics"]["inference_ms"], **body["timing"]})
            assert body["mask"] == rec.mask.tolist()  # same work on both paths
            assert body["compute_dtype"] == bare.compute_dtype
            t = time.perf_counter()
            post(seed, "application/json", "jpeg")
            times["post_jpeg"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            post(seed, "image/png")
            times["post_png"].append((time.perf_counter() - t) * 1000)
        client.close()
        peak_rss_mb = _peak_rss_mb(server.proc.pid if server.proc else None)
    throughput = _throughput_sweep(args, folder, model_id, data, image_name) if args.clients else []

    from mae_tools.bench.common import cpu_model

    result = {
        "benchmark": "serve_latency",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_model(),
        "checkpoint": model_id, "checkpoint_source": source,
        "image": image_name, "image_bytes": len(data), "image_size": list(image.size),
        "model_input": list(bare.image_size), "device": str(bare.device),
        "torch_threads_bare": torch.get_num_threads(), "batch_window_ms": args.window_ms,
        "precision": args.precision, "compute_dtype": bare.compute_dtype,
        "python": platform.python_version(), "torch": torch.__version__,
        "machine": platform.machine(), "load_average": list(_load_average()),
        "n": args.n,
        "latency": {name: _summary(values) for name, values in times.items()},
        "server_side_p50": {k: percentile([s[k] for s in server_side], 0.5) for k in server_side[0]},
        "server_peak_rss_mb": peak_rss_mb,
        "throughput": throughput,
    }
    p50 = {name: stat["p50_ms"] for name, stat in result["latency"].items()}
    result["overhead_p50_ms"] = p50["post_json"] - p50["bare"]
    result["overhead_p50"] = {
        f"{post}_vs_{base}": {"ms": p50[post] - p50[base], "ratio": p50[post] / p50[base]}
        for post in ("post_json", "post_jpeg") for base in ("bare", "library")
    }
    return check_bench("serve_latency", result)


class Client:
    """A keep-alive HTTP/1.1 connection posting multipart reconstruct requests (one thread)."""

    BOUNDARY = "mae-bench-boundary"

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def reconstruct(self, data: bytes, image_name: str, seed: int,
                    accept: str = "application/json", panel_format: str = "png") -> bytes:
        fields = {"seed": str(seed), "mask_ratio": "0.75", "panel_format": panel_format}
        head = "".join(f"--{self.BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                       for k, v in fields.items())
        head += (f"--{self.BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; "
                 f"filename=\"{image_name}\"\r\nContent-Type: image/jpeg\r\n\r\n")
        body = head.encode() + data + f"\r\n--{self.BOUNDARY}--\r\n".encode()
        self.conn.request("POST", "/reconstruct", body=body, headers={
            "Content-Type": f"multipart/form-data; boundary={self.BOUNDARY}", "Accept": accept})
        resp = self.conn.getresponse()
        content = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST /reconstruct answered {resp.status}: {content[:300]!r}")
        return content

    def close(self) -> None:
        self.conn.close()


def _peak_rss_mb(pid: int | None) -> float | None:
    """The process's peak resident memory (VmHWM) in MiB, where /proc exists."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _server_env(args: argparse.Namespace, **extra: str) -> dict[str, str]:
    """The ``mae serve`` environment for a run: the same precision and torch threads as the
    bare call, the batching window, and ``extra`` settings."""
    env = {"MAE_BATCH_WINDOW_MS": str(args.window_ms), "MAE_PRECISION": args.precision, **extra}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    return env


def _throughput_sweep(args, folder: Path, model_id: str, data: bytes, image_name: str) -> list[dict]:
    """images/s with 1, 4, 16 ... concurrent clients, micro-batching on vs off (batch size 1).

    Both servers run at once and take turns (on, off, on, off ... for each client count), so
    drifting load from other processes hits both alike; each row is the median of the rounds.
    """
    samples: dict[tuple[bool, int], list[tuple[float, list[int]]]] = {}
    with ExitStack() as stack:
        servers = {batching: stack.enter_context(ServerProcess(
            folder, model_id, args=["--device", args.device], env=_server_env(
                args, MAE_MAX_BATCH_SIZE="16" if batching else "1",
                MAE_QUEUE_SIZE=str(max(32, 2 * max(args.clients))))))
            for batching in (True, False)}
        for server in servers.values():
            server.wait_ready()
            _sweep_point(server.port, data, image_name, clients=1, total=3)  # warm-up
        for clients in args.clients:
            total = max(2 * clients, args.requests)
            for turn in range(args.rounds):
                order = list(servers.items())
                for batching, server in order if turn % 2 == 0 else order[::-1]:
                    samples.setdefault((batching, clients), []).append(
                        _sweep_point(server.port, data, image_name, clients, total))
    rows = []
    for (batching, clients), points in samples.items():
        rates = [rate for rate, _ in points]
        sizes = [size for _, batch_sizes in points for size in batch_sizes]
        rows.append({"batching": batching, "clients": clients, "requests": len(points[0][1]),
                     "rounds": len(points), "images_per_s": statistics.median(rates),
                     "images_per_s_rounds": rates, "mean_batch_size": statistics.fmean(sizes),
                     "max_batch_size": max(sizes)})
    off = {r["clients"]: r["images_per_s"] for r in rows if not r["batching"]}
    for r in rows:
        r["speedup_vs_no_batching"] = r["images_per_s"] / off[r["clients"]]
    return sorted(rows, key=lambda r: (not r["batching"], r["clients"]))


def _sweep_point(port: int, data: bytes, image_name: str, clients: int, total: int
                 ) -> tuple[float, list[int]]:
    """(images/s, batch size of each reply) for ``total`` requests from ``clients`` threads."""
    local = threading.local()

    def post(seed: int) -> dict:
        if not hasattr(local, "client"):
            local.client = Client(port)
        return json.loads(local.client.reconstruct(data, image_name, seed, panel_format="jpeg"))

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        bodies = list(pool.map(post, range(total)))
    wall = time.perf_counter() - start
    return total / wall, [b["timing"]["batch_size"] for b in bodies]


def _load_average() -> tuple[float, ...]:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())
    except OSError:
        return ()


def print_table(result: dict[str, Any]) -> None:
    lat = result["latency"]
    print(f"\nserve latency: {result['checkpoint']} ({result['checkpoint_source']}), "
          f"{result['image']} {result['image_size'][0]}x{result['image_size'][1]} -> "
          f"{result['model_input'][0]}x{result['model_input'][1]}, {result['device']}, "
          f"{result['compute_dtype']}, {result['torch_threads_bare']} torch threads, n={result['n']}, "
          f"load avg {result['load_average']}")
    print(f"{'path':<34}{'p50 ms':>10}{'p90 ms':>10}{'mean ms':>10}{'min ms':>10}")
    names = {"bare": "Reconstructor.reconstruct (bare)", "library": "library: bytes -> PNG panels",
             "post_json": "POST /reconstruct (JSON, PNG)", "post_jpeg": "POST /reconstruct (JSON, JPEG)",
             "post_png": "POST /reconstruct (Accept PNG)"}
    for key, label in names.items():
        if key not in lat:
            continue
        s = lat[key]
        print(f"{label:<34}{s['p50_ms']:>10.1f}{s['p90_ms']:>10.1f}{s['mean_ms']:>10.1f}{s['min_ms']:>10.1f}")
    for name, o in result["overhead_p50"].items():
        post, base = name.split("_vs_")
        print(f"server added at p50, {names[post].split('(')[1][:-1]} vs {base}: {o['ms']:+.1f} ms "
              f"({o['ratio'] - 1:+.0%})")
    ss = result["server_side_p50"]
    print(f"server side p50: inference {ss['inference_ms']:.1f} ms, queue {ss['queue_ms']:.1f} ms, "
          f"handler total {ss['server_ms']:.1f} ms")
    print(f"server peak RSS: {result['server_peak_rss_mb']} MiB")
    if result["throughput"]:
        print(f"{'batching':<10}{'clients':>8}{'requests':>10}{'img/s':>8}{'mean batch':>12}{'vs off':>8}")
        for r in result["throughput"]:
            print(f"{'on' if r['batching'] else 'off':<10}{r['clients']:>8}{r['requests']:>10}"
                  f"{r['images_per_s']:>8.1f}{r['mean_batch_size']:>12.2f}{r['speedup_vs_no_batching']:>8.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mae_tools.serve_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-dir", default=None,
                        help="checkpoint folder (default: the one holding mae-lab-default)")
    parser.add_argument("--model", default=None, help="checkpoint id (default: mae-lab-default, "
                        "else a random-init 224 px ViT-Ti/16)")
    parser.add_argument("--image", type=Path, default=None, help="image file (default: first sample)")
    parser.add_argument("-n", type=int, default=40, help="timed iterations per path (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 4, 16],
                        help="concurrent clients in the throughput sweep, micro-batching on and off "
                        "(default 1 4 16; none skips it)")
    parser.add_argument("--requests", type=int, default=48, help="requests per sweep point")
    parser.add_argument("--rounds", type=int, default=3,
                        help="turns per sweep point, servers alternating (default 3; median kept)")
    parser.add_argument("--window-ms", type=float, default=3.0, help="batching window (default 3)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps (default cpu)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fast",
                        help="for the bare call and the server (default fast, the server's default)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for the bare call and the server (default: torch's)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default $MAE_BENCH_DIR or var/bench-results/serve_latency.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.checkpoint_dir is None:
        args.checkpoint_dir = next((str(f) for f in checkpoint_folders()
                                    if (f / f"{DEFAULT_CHECKPOINT_ID}.safetensors").is_file()),
                                   str(checkpoint_folders()[0]))
    args.out = args.out or default_bench_dir() / "serve_latency.json"
    result = run(args)
    print_table(result)
    write_result(args.out, result, "serve_latency")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
