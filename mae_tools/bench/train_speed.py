"""Paper Table 2 on this machine: training-step wall-clock of the MAE encoder (visible patches
only) against the same encoder fed mask tokens, with 8- and 1-block decoders; and training
throughput with model-FLOP utilisation (MFU) per preset, eager vs ``torch.compile``."""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import torch

from mae_core.errors import InvalidParameterError
from mae_core.masking import make_generator, mask_scores
from mae_core.model import MaskedAutoencoderViT
from mae_core.presets import get_preset
from mae_core.reconstruct import pick_device
from mae_core.results import bench_result
from mae_tools.bench.common import machine_meta, mae_forward_flops, matmul_gflops, sync, time_call

log = logging.getLogger(__name__)

# (encoder, decoder depth) rows as the paper's Table 2; speed-ups are relative to the first row.
TABLE2_ROWS = (("mask-tokens", 8), ("visible-only", 8), ("visible-only", 1))
PAPER_TABLE2 = [  # hours for 800 epochs on 128 TPU-v3 cores (paper Table 2)
    {"encoder": "ViT-L w/ [M]", "decoder_depth": 8, "hours": 42.4, "speedup": None},
    {"encoder": "ViT-L", "decoder_depth": 8, "hours": 15.4, "speedup": 2.8},
    {"encoder": "ViT-L", "decoder_depth": 1, "hours": 11.6, "speedup": 3.7},
    {"encoder": "ViT-H w/ [M]", "decoder_depth": 8, "hours": 119.6, "speedup": None, "estimated": True},
    {"encoder": "ViT-H", "decoder_depth": 8, "hours": 34.5, "speedup": 3.5},
    {"encoder": "ViT-H", "decoder_depth": 1, "hours": 29.3, "speedup": 4.1},
]


def bench_train(
    model: str = "mae_vit_base_patch16",
    img_size: int = 224,
    batch_size: int = 8,
    mask_ratio: float = 0.75,
    steps: int = 3,
    device: str | None = None,
    amp: bool = True,
) -> dict[str, Any]:
    """Time one AdamW training step per Table 2 row; return rows + machine metadata."""
    dev = pick_device(device)
    base = get_preset(model, img_size=img_size)
    imgs = torch.randn(batch_size, 3, img_size, img_size, device=dev)
    noise = mask_scores("random", batch_size, base.grid_size, mask_ratio, make_generator(0)).to(dev)
    use_amp = amp and dev.type == "cuda"
    rows = []
    for encoder, depth in TABLE2_ROWS:
        config = base.replace(decoder_depth=depth, encoder_mask_tokens=encoder == "mask-tokens")
        torch.manual_seed(0)
        net = MaskedAutoencoderViT(config).to(dev).train()
        opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)

        def step():
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = net(imgs, mask_ratio=mask_ratio, noise=noise).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        seconds = time_call(step, dev, repeats=steps, warmup=1)
        flops = 3 * mae_forward_flops(config, mask_ratio) * batch_size  # backward ~ 2x forward
        rows.append({"encoder": encoder, "decoder_depth": depth, "step_s": seconds,
                     "images_per_s": batch_size / seconds, "gflops_per_s": flops / seconds / 1e9})
        net = opt = None  # type: ignore[assignment]  # free them before the next row
    reference = rows[0]["step_s"]
    peak = matmul_gflops(dev, dtype=torch.bfloat16 if use_amp else torch.float32)
    for r in rows:
        r["speedup"] = reference / r["step_s"]
        r["fraction_of_matmul"] = r["gflops_per_s"] / peak
    meta = {**machine_meta(dev), "model": model, "img_size": img_size, "batch_size": batch_size,
            "mask_ratio": mask_ratio, "amp_bf16": use_amp, "matmul_gflops": peak,
            "speedup_reference": "mask-tokens encoder with an 8-block decoder (as the paper)"}
    return bench_result("train", meta, rows, paper=PAPER_TABLE2)


# Dense bf16 matrix peaks by the vendors' datasheets (TFLOP/s), the MFU denominators.
BF16_DENSE_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.05}
MFU_MODES = ("eager", "compiled")


def datasheet_peak_tflops(device_name: str) -> float | None:
    """The bf16 dense peak of a known GPU from its name (``"NVIDIA H200"`` -> 989.4), else None."""
    for key, peak in BF16_DENSE_PEAK_TFLOPS.items():
        if key in device_name.upper():
            return peak
    return None


def bench_train_mfu(
    models: Sequence[str],
    img_size: int = 224,
    batch_size: int = 256,
    mask_ratio: float = 0.75,
    steps: int = 5,
    device: str | None = None,
    modes: Sequence[str] = MFU_MODES,
    peak_tflops: float | None = None,
) -> dict[str, Any]:
    """Training-step throughput and model-FLOP utilisation of MAE presets, eager vs compiled.

    Each row times a full AdamW step (bf16 autocast on CUDA) of one preset with its own decoder.
    Model FLOPs = 3 x forward FLOPs (backward ~ 2 x forward), counted by ``mae_forward_flops``;
    MFU = achieved model FLOP/s / peak. The peak is ``peak_tflops`` if given, else the GPU's
    datasheet bf16 dense peak, else the matrix-product rate measured in this run (on CPUs).
    ``compile_s`` is the wall time of the first (compiling) step.
    """
    for mode in modes:
        if mode not in MFU_MODES:
            raise InvalidParameterError(f"unknown mode {mode!r}; choose from {', '.join(MFU_MODES)}")
    dev = pick_device(device)
    use_amp = dev.type == "cuda"
    measured = matmul_gflops(dev, dtype=torch.bfloat16 if use_amp else torch.float32) / 1e3
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else ""
    sheet = datasheet_peak_tflops(name) if name else None
    peak = peak_tflops or sheet or measured
    source = "given" if peak_tflops else "datasheet bf16 dense" if sheet else "measured matmul"
    rows = []
    for model in models:
        config = get_preset(model, img_size=img_size)
        imgs = torch.randn(batch_size, 3, img_size, img_size, device=dev)
        noise = mask_scores("random", batch_size, config.grid_size, mask_ratio,
                            make_generator(0)).to(dev)
        flops = 3 * mae_forward_flops(config, mask_ratio) * batch_size
        for mode in modes:
            torch.manual_seed(0)
            net = MaskedAutoencoderViT(config).to(dev).train()
            opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=dev.type == "cuda")
            forward = torch.compile(net) if mode == "compiled" else net

            def step():
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                    loss = forward(imgs, mask_ratio=mask_ratio, noise=noise).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            first = time.perf_counter()
            step()
            sync(dev)
            compile_s = time.perf_counter() - first
            seconds = time_call(step, dev, repeats=steps, warmup=1)
            achieved = flops / seconds / 1e12
            rows.append({"model": model, "mode": mode, "batch_size": batch_size,
                         "step_s": seconds, "images_per_s": batch_size / seconds,
                         "model_tflops_per_s": achieved, "mfu": achieved / peak,
                         "first_step_s": compile_s,
                         "gflops_per_image": flops / batch_size / 1e9})
            log.info("%s %s: %.1f img/s, MFU %.1f%%", model, mode, batch_size / seconds,
                     100 * achieved / peak)
            net = opt = forward = None  # type: ignore[assignment]  # free before the next row
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    meta = {**machine_meta(dev), "img_size": img_size, "batch_size": batch_size,
            "mask_ratio": mask_ratio, "amp_bf16": use_amp, "steps": steps,
            "peak_tflops": peak, "peak_source": source, "measured_matmul_tflops": measured,
            "flops_rule": "3 x forward (encoder on visible tokens, decoder on all)"}
    return bench_result("train_mfu", meta, rows)
