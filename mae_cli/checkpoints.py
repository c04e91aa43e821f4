"""``mae checkpoints list|pull|convert|export``."""

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

    exp = sub.add_parser(
        "export", help="export a checkpoint for transformers, timm or the official code",
        description="Write SRC in the layout another library loads. --to hf: a folder with "
        "config.json + model.safetensors for transformers.ViTMAEForPreTraining.from_pretrained "
        "(needs a decoder). --to timm: encoder weights (safetensors) for timm.create_model("
        "'vit_base_patch16_224', pretrained=True, num_classes=0, pretrained_cfg_overlay="
        "dict(file=OUT)). --to official: a facebookresearch/mae .pth ({'model': state_dict}). "
        "Example: mae checkpoints export runs/demo/model.safetensors my-mae-hf --to hf",
    )
    exp.add_argument("src", type=Path, help="any checkpoint MAE Lab loads")
    exp.add_argument("out", type=Path, help="output folder (hf) or file (timm, official)")
    exp.add_argument("--to", required=True, choices=("hf", "timm", "official"), help="target layout")
    exp.set_defaults(func=run_export)


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


def run_export(args: argparse.Namespace) -> int:
    from mae_core.checkpoint import load_model
    from mae_core.checkpoint.export import export_model

    path = export_model(load_model(args.src), args.out, args.to)
    print(f"wrote {path}")
    return 0
