"""``mae models``: the registered presets and their sizes."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list model presets",
                              description="List the registered model presets with their sizes.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mae_core.presets import get_preset, list_presets

    print(f"{'preset':26} {'patch':>5} {'D':>5} {'depth':>5} {'heads':>5} {'decoder':>16}")
    for name in list_presets():
        c = get_preset(name)
        dec = f"{c.decoder_embed_dim}-d x{c.decoder_depth} ({c.decoder_num_heads}h)"
        print(f"{name:26} {c.patch_size:>5} {c.embed_dim:>5} {c.depth:>5} {c.num_heads:>5} {dec:>16}")
    return 0
