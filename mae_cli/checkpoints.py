"""``mae checkpoints list|pull|convert``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("checkpoints", help="list, download and convert checkpoints",
                              description="Manage checkpoints in the checkpoint folder.")
    sub = p.add_subparsers(dest="checkpoints_command", metavar="ACTION", required=True)

    ls = sub.add_parser(
        "list", help="show the checkpoints the app offers and the official ones",
        description="Lists, in the web app's order (an id found earlier wins): the checkpoint "
        "folder ($MAE_CHECKPOINT_DIR, default DATA_DIR/checkpoints), the data folder's "
        "checkpoints/ (models of finished training jobs) and the embedded default checkpoint.")
    ls.add_argument("--dir", type=Path, default=None, help="list only this folder")
    ls.add_argument("--data-dir", type=Path, default=None,
                    help="the data folder shared with `mae worker` (env MAE_DATA_DIR, default var/)")
    ls.set_defaults(func=run_list)

    pull = sub.add_parser(
        "pull", help="download an official checkpoint",
        description="Download an official facebookresearch/mae checkpoint with a progress bar, "
        "resume of partial downloads and md5 verification. Example: "
        "mae checkpoints pull mae_visualize_vit_large",
    )
    pull.add_argument("name", help="official name, see `mae checkpoints list`")
    pull.add_argument("--dir", type=Path, default=None,
                      help="target folder (default: $MAE_CHECKPOINT_DIR, else var/checkpoints)")
    pull.add_argument("--base-url", default=None,
                      help="mirror base URL (env MAE_CHECKPOINT_BASE_URL; default the official host)")
    pull.set_defaults(func=run_pull)

    conv = sub.add_parser(
        "convert", help="convert any supported checkpoint to safetensors + JSON card",
        description="Read an official .pth, a Hugging Face ViTMAE state dict or timm MAE weights "
        "and write DST.safetensors with its JSON card. --fp16 halves the file size.",
    )
    conv.add_argument("src", type=Path)
    conv.add_argument("dst", type=Path)
    conv.add_argument("--fp16", action="store_true", help="store weights as float16")
    conv.set_defaults(func=run_convert)


def run_list(args: argparse.Namespace) -> int:
    from mae_core.checkpoint import list_checkpoints
    from mae_core.checkpoint.catalog import OFFICIAL_CHECKPOINTS
    from mae_core.defaults import checkpoint_folders

    for folder in [args.dir] if args.dir else checkpoint_folders(args.data_dir):
        print(f"checkpoints in {folder}:")
        infos = list_checkpoints(folder)
        for info in infos:
            cfg = info.card.get("model_config", {})
            desc = info.error or (
                f"D={cfg.get('embed_dim')} depth={cfg.get('depth')} "
                f"decoder={'yes' if info.can_reconstruct else 'no'} "
                f"norm_pix={cfg.get('norm_pix_loss')}"
            )
            print(f"  {'BROKEN ' if info.error else ''}{info.id:36} {desc}")
        if not infos:
            print("  (none)")
    print("official checkpoints (mae checkpoints pull NAME):")
    for name, entry in sorted(OFFICIAL_CHECKPOINTS.items()):
        print(f"  {name:36} {entry.description}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from mae_core.checkpoint.download import pull_official
    from mae_core.defaults import checkpoint_dir

    path = pull_official(args.name, args.dir or checkpoint_dir(), args.base_url)
    print(f"saved {path}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    import torch

    from mae_core.checkpoint import load_model, save_model

    model = load_model(args.src)
    # keep what the source card says about training, data and quality
    card = {k: v for k, v in (model.card or {}).items() if k not in ("format", "model_config", "dtype")}
    card.update(source={"file": args.src.name, "layout": model.source_layout},
                has_decoder=model.has_decoder)
    path = save_model(model, args.dst, card, dtype=torch.float16 if args.fp16 else torch.float32)
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0
