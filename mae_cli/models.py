"""``mae models``: the registered presets, their sizes and parameter counts."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models", help="list model presets with their parameter counts",
        description="List the registered model presets: patch size, width, depth and heads of the "
        "encoder, the decoder, and the learned parameters of each (fixed sin-cos position "
        "tables not counted; the paper's ViT-B/L/H encoders have 86M/304M/632M).")
    p.set_defaults(func=run)


def parameter_counts(name: str) -> dict[str, int]:
    """Learned parameters of preset ``name``: encoder, decoder (official key names) and total.
    The model is built on the meta device: no memory, no initialisation."""
    import torch

    from mae_core import create_model
    from mae_core.checkpoint.io import is_decoder_key

    with torch.device("meta"):
        model = create_model(name)
    counts = {"encoder": 0, "decoder": 0}
    for key, param in model.named_parameters():
        if param.requires_grad:
            counts["decoder" if is_decoder_key(key) else "encoder"] += param.numel()
    return {**counts, "total": counts["encoder"] + counts["decoder"]}


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M"


def run(args: argparse.Namespace) -> int:
    from mae_core.presets import get_preset, list_presets

    print(f"{'preset':26} {'patch':>5} {'D':>5} {'depth':>5} {'heads':>5} {'decoder':>16} "
          f"{'encoder':>9} {'decoder':>9} {'total':>9}")
    for name in list_presets():
        c = get_preset(name)
        n = parameter_counts(name)
        dec = f"{c.decoder_embed_dim}-d x{c.decoder_depth} ({c.decoder_num_heads}h)"
        print(f"{name:26} {c.patch_size:>5} {c.embed_dim:>5} {c.depth:>5} {c.num_heads:>5} {dec:>16} "
              f"{_millions(n['encoder']):>9} {_millions(n['decoder']):>9} {_millions(n['total']):>9}")
    return 0
