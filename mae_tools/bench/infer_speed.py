"""Reconstruction throughput of the presets at batch 1 and 16, and its share of the machine's
matmul rate."""

from __future__ import annotations

import statistics
from typing import Any, Sequence

import torch

from mae_core.masking import make_generator, mask_scores
from mae_core.model import create_model
from mae_core.precision import autocast, autocast_dtype, dtype_name
from mae_core.reconstruct import pick_device
from mae_core.results import bench_result
from mae_tools.bench.common import machine_meta, mae_forward_flops, matmul_op, time_interleaved


def bench_infer(
    models: Sequence[str] = ("mae_vit_tiny_patch16", "mae_vit_base_patch16"),
    batch_sizes: Sequence[int] = (1, 16),
    img_size: int = 224,
    mask_ratio: float = 0.75,
    repeats: int = 5,
    device: str | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """``precision`` as ``Reconstructor``'s (auto: bf16 autocast on CUDA, fp32 on CPU). The
    matmul ceiling is measured in the same dtype, interleaved with each row's forward passes,
    so a load spike from other processes cannot inflate one side of the ratio."""
    dev = pick_device(device)
    amp = autocast_dtype(precision, dev)
    matmul, matmul_flops = matmul_op(dev, dtype=amp or torch.float32)
    peaks = []
    rows = []
    for name in models:
        net = create_model(name, img_size=img_size).to(dev).eval()
        for bs in batch_sizes:
            imgs = torch.randn(bs, 3, img_size, img_size, device=dev)
            noise = mask_scores("random", bs, net.config.grid_size, mask_ratio, make_generator(0)).to(dev)

            def forward():
                with torch.inference_mode(), autocast(dev, amp):
                    net(imgs, mask_ratio=mask_ratio, noise=noise)

            seconds, matmul_s = time_interleaved([forward, matmul], dev, repeats=repeats)
            peaks.append(matmul_flops / matmul_s / 1e9)
            gflops = mae_forward_flops(net.config, mask_ratio) * bs / seconds / 1e9
            rows.append({"model": name, "batch_size": bs, "ms_per_batch": 1000 * seconds,
                         "images_per_s": bs / seconds, "gflops_per_s": gflops,
                         "matmul_gflops": peaks[-1], "fraction_of_matmul": gflops / peaks[-1]})
        net = None  # type: ignore[assignment]  # free it before the next model is built
    return bench_result("infer", {**machine_meta(dev), "img_size": img_size, "mask_ratio": mask_ratio,
                                  "amp_bf16": amp is torch.bfloat16, "compute_dtype": dtype_name(amp),
                                  "matmul_gflops": statistics.median(peaks)}, rows)
