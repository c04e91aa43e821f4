"""Fake analysis inputs (a training run, benchmark and ablation files) and the figure ids the
analysis page must draw, shared by the API tests and the browser test."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

from PIL import Image


PAGE_FIGURES = ["table1a", "table1b", "table1c", "table1d", "table1e", "table1f",
                "scratch-vs-mae", "figure5", "figure7", "figure9", "table2", "bench",
                "ablation-mask_ratio", "ablation-strategy", "ablation-decoder_depth",
                "ablation-norm_pix"]
PERF_FIGURES = ["perf-infer", "perf-infer-gpu", "perf-peer", "perf-peer-gpu", "perf-latency",
                "perf-throughput"]
RUN_FIGURES = ["run-loss", "run-speed"]
HEAT_TABLES = ["table3", "table4", "table5", "table6", "table7", "table12", "table13"]

BENCH = {
    "meta": {"date": "2025-01-01", "cpu": "Test CPU x2", "torch": "2.14",
             "model": "mae_vit_tiny_patch16", "img_size": 64, "batch_size": 8},
    "rows": [
        {"encoder": "mask-tokens", "decoder_depth": 8, "step_s": 0.30, "images_per_s": 26.7,
         "speedup": 1.0},
        {"encoder": "visible-only", "decoder_depth": 8, "step_s": 0.15, "images_per_s": 53.3,
         "speedup": 2.0},
        {"encoder": "mask-tokens", "decoder_depth": 1, "step_s": 0.20, "images_per_s": 40.0,
         "speedup": 1.0},
        {"encoder": "visible-only", "decoder_depth": 1, "step_s": 0.08, "images_per_s": 100.0,
         "speedup": 2.5},
    ],
}
ABLATION_MASK_RATIO = {
    "factor": "mask_ratio", "meta": {"model": "mae_vit_tiny_patch16", "img_size": 64,
                                     "epochs": 3, "dataset": "synthetic"},
    "rows": [{"value": v, "recon_loss": 0.9 - v / 2, "linprobe_acc": 20 + 10 * v}
             for v in (0.25, 0.5, 0.75, 0.9)],
}

# committed benchmark files (small literal stand-ins with the real formats)
MACHINE = {"date": "2025-02-03T04:05:06+00:00", "cpu": "Test CPU x2", "torch": "2.14.1",
           "device": "cpu", "torch_threads": 2}
BENCH_TRAIN_GPU = {
    "meta": {**MACHINE, "device": "cuda", "gpu": "Test GPU 80GB", "model": "mae_vit_large_patch16",
             "img_size": 224, "batch_size": 64},
    "rows": [
        {"encoder": "mask-tokens", "decoder_depth": 8, "step_s": 0.09, "images_per_s": 711.0,
         "speedup": 1.0},
        {"encoder": "visible-only", "decoder_depth": 8, "step_s": 0.03, "images_per_s": 2133.0,
         "speedup": 3.0},
        {"encoder": "visible-only", "decoder_depth": 1, "step_s": 0.02, "images_per_s": 3200.0,
         "speedup": 4.5},
    ],
}


def infer_row(model: str, batch: int, ms: float) -> dict:
    return {"model": model, "batch_size": batch, "ms_per_batch": ms,
            "images_per_s": 1000 * batch / ms, "gflops_per_s": 50.0,
            "fraction_of_matmul": 0.25}


BENCH_INFER = {
    "meta": {**MACHINE, "img_size": 224, "mask_ratio": 0.75, "matmul_gflops": 200.0},
    "rows": [infer_row(m, b, ms) for m, b, ms in (
        ("mae_vit_tiny_patch16", 1, 14.0), ("mae_vit_tiny_patch16", 16, 128.0),
        ("mae_vit_base_patch16", 1, 156.0), ("mae_vit_base_patch16", 16, 1859.0))],
}
BENCH_INFER_GPU = {
    "meta": {**MACHINE, "device": "cuda", "gpu": "Test GPU 80GB", "img_size": 224,
             "matmul_gflops": 700000.0},
    "rows": [infer_row("mae_vit_tiny_patch16", b, 5.7) for b in (1, 16, 64)],
}
BENCH_PEER = {
    "meta": {**MACHINE, "peer": "transformers 4.99 ViTMAEForPreTraining (sdpa attention)"},
    "rows": [
        {"model": "mae_vit_tiny_patch16", "mode": "inference", "batch_size": 1,
         "ours_images_per_s": 70.0, "peer_images_per_s": 50.0, "speedup": 1.4,
         "max_abs_diff": 3e-6},
        {"model": "mae_vit_tiny_patch16", "mode": "inference", "batch_size": 16,
         "ours_images_per_s": 125.0, "peer_images_per_s": 100.0, "speedup": 1.25,
         "max_abs_diff": 4e-6},
        {"model": "mae_vit_tiny_patch16", "mode": "train", "batch_size": 8,
         "ours_images_per_s": 30.0, "peer_images_per_s": 24.0, "speedup": 1.25,
         "max_abs_diff": None},
    ],
}


def latency(p50: float) -> dict:
    return {"p50_ms": p50, "p90_ms": p50 * 1.5, "mean_ms": p50 * 1.2, "min_ms": p50 * 0.8,
            "n": 30}


SERVE_LATENCY = {
    "benchmark": "serve_latency", "checkpoint": "mae-lab-default", "device": "cpu",
    "torch": "2.14.1", "machine": "x86_64", "load_average": [1.0, 0.5, 0.25],
    "latency": {"bare": latency(50.0), "post_json": latency(65.0), "post_jpeg": latency(70.0),
                "post_png": latency(75.0)},
    "overhead_p50_ms": 15.0, "server_peak_rss_mb": 1024.0,
    "throughput": [{"batching": b, "clients": c, "requests": 48, "images_per_s": ips,
                    "mean_batch_size": mb, "max_batch_size": int(mb),
                    "speedup_vs_no_batching": sp}
                   for b, c, ips, mb, sp in ((True, 1, 5.0, 1.0, 0.6), (True, 4, 15.0, 2.6, 2.9),
                                              (False, 1, 8.5, 1.0, 1.0),
                                              (False, 4, 5.2, 1.0, 1.0))],
}
# an older serve_latency.json: no post_jpeg, throughput or server_peak_rss_mb
SERVE_LATENCY_OLD = {
    "benchmark": "serve_latency", "device": "cpu", "torch": "2.11.0", "machine": "x86_64",
    "latency": {"bare": latency(33.0), "post_json": latency(85.0), "post_png": latency(78.0)},
    "overhead_p50_ms": 52.0,
}
PERF_FILES = {"bench_train_gpu.json": BENCH_TRAIN_GPU, "bench_infer.json": BENCH_INFER,
              "bench_infer_gpu.json": BENCH_INFER_GPU, "bench_peer.json": BENCH_PEER,
              "bench_peer_gpu.json": {**BENCH_PEER, "rows": BENCH_PEER["rows"][:2],
                                      "meta": {**BENCH_PEER["meta"], "device": "cuda",
                                               "gpu": "Test GPU 80GB"}},
              "serve_latency.json": SERVE_LATENCY}


def snapshot_png(step: int) -> bytes:
    """A small stand-in for a four-panel reconstruction figure, shaded by step."""
    img = Image.new("RGB", (256, 64), (30, 30, 30))
    for i in range(4):
        shade = min(255, 60 + step // 4 + 30 * i)
        img.paste((shade, 120, 255 - shade), (i * 64 + 2, 2, i * 64 + 62, 62))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_run(root: Path, run_id: str, steps: int = 40, *, snapshots=(0, 20, 40),
              summary: dict | None = None, tail: str = "") -> Path:
    run = root / run_id
    (run / "snapshots").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "mae_vit_tiny_patch16",
                                                 "mask_ratio": 0.75, "epochs": 4}))
    lines = []
    for s in range(1, steps + 1):
        lines.append(json.dumps({
            "step": s, "epoch": s / 10, "lr": 1.5e-4 * min(1.0, s / 10),
            "loss": 1.1 * 0.96 ** s + 0.2, "images_per_s": 40 + (s % 5),
            "data_wait_frac": 0.05, "elapsed_s": s * 0.4}))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n" + tail)
    for step in snapshots:
        (run / "snapshots" / f"step_{step:08d}.png").write_bytes(snapshot_png(step))
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    return run


def write_ours(runs_dir: Path, bench_dir: Path) -> None:
    """Fake outputs of the trainer, `mae bench train` and `mae ablate` for page tests."""
    write_run(runs_dir, "demo-run", tail='{"step": 41, "loss": 0.3')
    older = write_run(runs_dir, "older-run", steps=10, snapshots=(), summary={"final_loss": 0.5})
    hour_ago = time.time() - 3600
    for path in [older, *older.rglob("*")]:
        os.utime(path, (hour_ago, hour_ago))
    bench_dir.mkdir(parents=True, exist_ok=True)
    (bench_dir / "bench_train.json").write_text(json.dumps(BENCH))
    for name, body in PERF_FILES.items():
        (bench_dir / name).write_text(json.dumps(body))
    (bench_dir / "ablations").mkdir(exist_ok=True)
    (bench_dir / "ablations" / "mask_ratio.json").write_text(json.dumps(ABLATION_MASK_RATIO))
