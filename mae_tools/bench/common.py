"""Shared benchmark plumbing: timing, the machine's matmul rate, metadata, table + JSON output."""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from mae_core import results
from mae_core.results import cpu_model, machine_meta  # noqa: F401 - one definition, used by the benches

log = logging.getLogger(__name__)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def time_interleaved(fns: Sequence[Callable[[], Any]], device: torch.device, repeats: int = 5,
                     warmup: int = 2, min_sample_s: float = 0.0) -> list[float]:
    """Median seconds per call of each of ``fns``, called in turn each round (the order reversed
    every other round), so drifting load from other processes hits all of them alike (for
    side-by-side ratios). With ``min_sample_s``, each sample repeats a short call until it
    lasts about that long, so millisecond calls are not timed one at a time."""
    calls = [1] * len(fns)
    for i, fn in enumerate(fns):
        start = time.perf_counter()
        for _ in range(warmup):
            fn()
        sync(device)
        per_call = (time.perf_counter() - start) / max(1, warmup)
        if min_sample_s > 0 and per_call > 0:
            calls[i] = max(1, round(min_sample_s / per_call))
    samples: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    for turn in range(repeats):
        for i in order if turn % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            for _ in range(calls[i]):
                fns[i]()
            sync(device)
            samples[i].append((time.perf_counter() - start) / calls[i])
    return [statistics.median(s) for s in samples]


def matmul_op(device: torch.device, n: int | None = None, dtype: torch.dtype = torch.float32
              ) -> tuple[Callable[[], Any], float]:
    """(an n x n x n matrix product to time, its FLOPs): the machine's practical ceiling."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return (lambda: a @ b), 2.0 * n**3


def matmul_gflops(device: torch.device, n: int | None = None, dtype: torch.dtype = torch.float32) -> float:
    """Achieved GFLOP/s of an n x n x n matrix product: the machine's practical ceiling."""
    fn, flops = matmul_op(device, n, dtype)
    return flops / time_call(fn, device, repeats=5, warmup=2) / 1e9


def vit_block_flops(tokens: int, dim: int, depth: int) -> float:
    """Forward FLOPs of ``depth`` ViT blocks: 24*N*D^2 (linears, mlp ratio 4) + 4*N^2*D (attention)."""
    return depth * (24 * tokens * dim**2 + 4 * tokens**2 * dim)


def mae_forward_flops(config, mask_ratio: float) -> float:
    """Forward FLOPs of one MAE sample: encoder on visible (+cls) tokens, decoder on all."""
    length = config.num_patches
    visible = length if config.encoder_mask_tokens else int(length * (1 - mask_ratio))
    flops = vit_block_flops(visible + 1, config.embed_dim, config.depth)
    flops += vit_block_flops(length + 1, config.decoder_embed_dim, config.decoder_depth)
    flops += 2 * length * config.patch_size**2 * 3 * config.embed_dim  # patch embedding
    flops += 2 * (length + 1) * config.decoder_embed_dim * (config.embed_dim + config.patch_size**2 * 3)
    return float(flops)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """``columns``: (key, header, format spec)."""
    header = [h for _, h, _ in columns]
    body = [[format(r.get(k), f) if r.get(k) is not None else "-" for k, _, f in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def write_result(path: str | Path, result: dict[str, Any], kind: str | None = None) -> Path:
    """``mae_core.results.write_result``, logged."""
    path = results.write_result(path, result, kind)
    log.info("wrote %s", path)
    return path
