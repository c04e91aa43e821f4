"""Peer comparison: our MaskedAutoencoderViT against Hugging Face transformers'
ViTMAEForPreTraining with the same weights and the same masks (optional ``bench`` extra)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from mae_core.errors import MAEError
from mae_core.masking import make_generator, mask_scores
from mae_core.model import create_model
from mae_core.reconstruct import pick_device
from mae_core.results import bench_result
from mae_tools.bench.common import machine_meta, time_interleaved


def huggingface_twin(model):
    """A transformers ViTMAEForPreTraining holding exactly ``model``'s weights."""
    try:
        import transformers
    except ImportError:
        raise MAEError("the peer benchmark needs transformers: pip install 'mae-lab[bench]'") from None
    import tempfile

    from mae_core.checkpoint.export import export_huggingface

    with tempfile.TemporaryDirectory() as folder:
        export_huggingface(model, folder)  # the Hub layout, which every transformers version reads
        return transformers.ViTMAEForPreTraining.from_pretrained(folder, attn_implementation="sdpa")


def bench_peer(
    models: Sequence[str] = ("mae_vit_tiny_patch16", "mae_vit_base_patch16"),
    batch_sizes: Sequence[int] = (1, 16),
    train_batch: int = 8,
    img_size: int = 224,
    repeats: int = 7,
    device: str | None = None,
    min_sample_s: float = 0.3,
) -> dict[str, Any]:
    """Inference and training-step images/s of ours vs the peer, interleaved in one run."""
    dev = pick_device(device)
    rows = []
    for name in models:
        torch.manual_seed(0)
        ours = create_model(name, img_size=img_size).to(dev)
        peer = huggingface_twin(ours).to(dev)
        grid = ours.config.grid_size
        for mode, sizes in (("inference", batch_sizes), ("train", (train_batch,))):
            for bs in sizes:
                imgs = torch.randn(bs, 3, img_size, img_size, device=dev)
                noise = mask_scores("random", bs, grid, 0.75, make_generator(0)).to(dev)
                if mode == "inference":
                    ours.eval(), peer.eval()
                    with torch.inference_mode():
                        diff = (ours(imgs, noise=noise).pred - peer(pixel_values=imgs, noise=noise).logits).abs().max().item()

                    def run_ours():
                        with torch.inference_mode():
                            ours(imgs, noise=noise)

                    def run_peer():
                        with torch.inference_mode():
                            peer(pixel_values=imgs, noise=noise)
                else:
                    ours.train(), peer.train()
                    diff = None

                    def run_ours():
                        ours(imgs, noise=noise).loss.backward()

                    def run_peer():
                        peer(pixel_values=imgs, noise=noise).loss.backward()
                t_ours, t_peer = time_interleaved([run_ours, run_peer], dev, repeats=repeats,
                                                  min_sample_s=min_sample_s)
                rows.append({"model": name, "mode": mode, "batch_size": bs,
                             "ours_images_per_s": bs / t_ours, "peer_images_per_s": bs / t_peer,
                             "speedup": t_peer / t_ours, "max_abs_diff": diff})
        ours = peer = None  # type: ignore[assignment]  # free both before the next size
    import transformers

    return bench_result("peer", {**machine_meta(dev), "peer": f"transformers {transformers.__version__} "
                                 "ViTMAEForPreTraining (sdpa attention)", "img_size": img_size}, rows)
