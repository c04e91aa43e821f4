"""``mae train``: pretrain an MAE on a folder of images (one CPU to many GPUs via torchrun)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# flag -> (section, field); section None = top level of TrainConfig
FLAG_FIELDS = {
    "data": ("data", "path"), "val_data": ("data", "val_path"), "img_size": ("data", "img_size"),
    "num_workers": ("data", "num_workers"), "cache_px": ("data", "cache_px"), "repeats": ("data", "repeats"),
    "scale_min": ("data", "scale_min"),
    "blr": ("optim", "blr"), "lr": ("optim", "lr"), "min_lr": ("optim", "min_lr"),
    "weight_decay": ("optim", "weight_decay"), "warmup_epochs": ("optim", "warmup_epochs"),
    "clip_grad": ("optim", "clip_grad"),
    "model": (None, "model"), "epochs": (None, "epochs"), "batch_size": (None, "batch_size"),
    "accum_iter": (None, "accum_iter"), "effective_batch": (None, "effective_batch"),
    "mask_ratio": (None, "mask_ratio"), "mask_strategy": (None, "mask_strategy"),
    "seed": (None, "seed"), "amp": (None, "amp"), "device": (None, "device"),
    "output_dir": (None, "output_dir"), "log_every": (None, "log_every"),
    "snapshot_every": (None, "snapshot_every"), "ckpt_every_steps": (None, "ckpt_every_steps"),
    "ckpt_every_minutes": (None, "ckpt_every_minutes"), "keep_last": (None, "keep_last"),
    "max_steps": (None, "max_steps"),
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="pretrain an MAE on a folder of images",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Pretrain a Masked Autoencoder (paper recipe: AdamW b=(0.9, 0.95), wd 0.05,\n"
            "lr = blr * effective_batch / 256, linear warmup then half-cycle cosine per iteration).\n"
            "effective_batch = batch_size * accum_iter * world_size.\n\n"
            "examples:\n"
            "  mae train --data photos/ --recipe cpu-demo --output-dir runs/demo\n"
            "  mae train --output-dir runs/demo --resume\n"
            "  torchrun --nproc_per_node 8 -m mae_core train --data imagenet/train --recipe paper"
        ),
    )
    p.add_argument("--recipe", default="cpu-demo", help="paper | cpu-demo (default cpu-demo)")
    p.add_argument("--config", type=Path, default=None, help="YAML/JSON file of config fields")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output-dir from its latest checkpoint "
                        "(its saved config is used; --epochs/--max-steps may be changed)")
    p.add_argument("--data", help="folder of images (recursive) or ImageFolder root")
    p.add_argument("--val-data", help="held-out folder for reconstruction snapshots")
    p.add_argument("--model", help="model preset (see `mae models`)")
    p.add_argument("--decoder-depth", type=int, help="override the preset's decoder depth")
    p.add_argument("--decoder-dim", type=int, help="override the preset's decoder width")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="per-process batch size")
    p.add_argument("--accum-iter", type=int, help="gradient accumulation steps")
    p.add_argument("--effective-batch", type=int, help="derive accum-iter to reach this batch")
    p.add_argument("--img-size", type=int, help="square input size in pixels")
    p.add_argument("--mask-ratio", type=float)
    p.add_argument("--mask-strategy", help="random | block | grid")
    norm = p.add_mutually_exclusive_group()
    norm.add_argument("--norm-pix", dest="norm_pix_loss", action="store_true", default=None,
                      help="regress per-patch normalised pixels (paper default)")
    norm.add_argument("--no-norm-pix", dest="norm_pix_loss", action="store_false",
                      help="regress raw pixels (reconstructions display directly)")
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="resize + centre crop instead of RandomResizedCrop + flip")
    p.add_argument("--blr", type=float, help="base lr; lr = blr * effective_batch / 256")
    p.add_argument("--lr", type=float, help="absolute lr (overrides blr)")
    p.add_argument("--min-lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--clip-grad", type=float, help="gradient norm clip (paper: none)")
    p.add_argument("--amp", help="auto | bf16 | fp16 | off (auto: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--device", help="cpu | cuda | mps (default: best available)")
    p.add_argument("--num-workers", type=int, help="DataLoader workers")
    p.add_argument("--cache-px", type=int, help="pre-decode images to this short side in RAM")
    p.add_argument("--repeats", type=int, help="visit every image this many times per epoch")
    p.add_argument("--scale-min", type=float, help="RandomResizedCrop minimum area (paper 0.2)")
    p.add_argument("--seed", type=int)
    p.add_argument("--output-dir", help="run folder (default runs/<timestamp>)")
    p.add_argument("--log-every", type=int)
    p.add_argument("--snapshot-every", type=int)
    p.add_argument("--ckpt-every-steps", type=int)
    p.add_argument("--ckpt-every-minutes", type=float)
    p.add_argument("--keep-last", type=int)
    p.add_argument("--max-steps", type=int,
                   help="run at most this many steps in this invocation, then checkpoint and "
                        "stop; --resume continues the schedule (to its end, or for a new "
                        "--max-steps) and exports the model when it completes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    from mae_core.errors import InvalidParameterError
    from mae_core.train.config import TrainConfig, get_recipe, load_config_file, merge

    if args.resume:
        if not args.output_dir:
            raise InvalidParameterError("--resume needs --output-dir RUN_DIR")
        saved = Path(args.output_dir) / "config.json"
        if not saved.is_file():
            raise InvalidParameterError(f"cannot resume: {saved} does not exist")
        config = TrainConfig.from_dict(json.loads(saved.read_text()))
        changes = {"epochs": args.epochs} if args.epochs is not None else {}
        # max_steps budgets one invocation: never carried over from the saved config
        return merge(config, {**changes, "max_steps": args.max_steps})
    config = get_recipe(args.recipe)
    if args.config:
        config = merge(config, load_config_file(args.config))
    changes: dict = {}
    for flag, (section, name) in FLAG_FIELDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            if section:
                changes.setdefault(section, {})[name] = value
            else:
                changes[name] = value
    for flag, name in (("norm_pix_loss", "norm_pix_loss"), ("compile", "compile")):
        if getattr(args, flag) is not None:
            changes[name] = getattr(args, flag)
    if args.augment is not None:
        changes.setdefault("data", {})["augment"] = args.augment
    overrides = dict(config.model_overrides)
    if args.decoder_depth is not None:
        overrides["decoder_depth"] = args.decoder_depth
    if args.decoder_dim is not None:
        overrides["decoder_embed_dim"] = args.decoder_dim
    if overrides:
        changes["model_overrides"] = overrides
    return merge(config, changes)


def run(args: argparse.Namespace) -> int:
    from mae_core.train import Trainer

    config = resolve_config(args)
    log.info("resolved config: %s", json.dumps(config.to_dict(), sort_keys=True))
    result = Trainer(config, resume=args.resume, progress=not args.no_progress).run()
    if os.environ.get("RANK", "0") != "0":
        return 0
    print(json.dumps({"run_dir": str(result.run_dir), "status": result.status, "step": result.step,
                      "images_seen": result.images_seen, "final_loss": result.final_loss,
                      "skipped_images": result.skipped_images,
                      "export": str(result.export_path) if result.export_path else None}))
    return {"completed": 0, "stopped": 0, "interrupted": 143}[result.status]
