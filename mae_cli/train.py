"""``mae train``: pretrain an MAE on a folder of images (one CPU to many GPUs via torchrun)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from mae_core.train.fields import TRAIN_FIELDS

from .fieldargs import add_field_argument
from .launch import add_launcher_arguments

log = logging.getLogger(__name__)

# Every training field with a flag of its own (booleans have --x / --no-x pairs below).
FLAG_FIELDS = tuple(f for f in TRAIN_FIELDS if f.type is not bool)
ALIASES = {"decoder_embed_dim": ("--decoder-dim",)}  # the older name stays


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
            "  torchrun --nproc_per_node 8 -m mae_cli train --data imagenet/train --recipe paper\n"
            "  mae train --launcher slurm --nodes 8 --gpus-per-node 8 --partition gpu \\\n"
            "      --timeout 4320 --data imagenet/train --recipe paper --output-dir runs/vitl"
        ),
    )
    p.add_argument("--recipe", default="cpu-demo", help="paper | cpu-demo (default cpu-demo)")
    p.add_argument("--config", type=Path, default=None, help="YAML/JSON file of config fields")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output-dir from its latest checkpoint "
                        "(its saved config is used; --epochs/--max-steps may be changed)")
    for spec in FLAG_FIELDS:
        add_field_argument(p, spec, *ALIASES.get(spec.name, ()))
    norm = p.add_mutually_exclusive_group()
    norm.add_argument("--norm-pix", dest="norm_pix_loss", action="store_true", default=None,
                      help="regress per-patch normalised pixels (paper default)")
    norm.add_argument("--no-norm-pix", dest="norm_pix_loss", action="store_false",
                      help="regress raw pixels (reconstructions display directly)")
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="resize + centre crop instead of RandomResizedCrop + flip")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_launcher_arguments(p)
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    from mae_core.errors import InvalidParameterError
    from mae_core.train.config import TrainConfig, get_recipe, load_config_file, merge
    from mae_core.train.init import lr_fields

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
    recipe = get_recipe(args.recipe)
    # What the user asked for: the config file's fields, then the flags on top of them.
    asked: dict = load_config_file(args.config) if args.config else {}
    for spec in FLAG_FIELDS:
        value = getattr(args, spec.name, None)
        if value is None:
            continue
        section, _, name = spec.path.rpartition(".")
        if section:  # a section's other fields stay (the recipe's overrides too)
            base = recipe.model_overrides if section == "model_overrides" else {}
            asked[section] = {**base, **(asked.get(section) or {}), name: value}
        else:
            asked[name] = value
    for flag, name in (("norm_pix_loss", "norm_pix_loss"), ("compile", "compile")):
        if getattr(args, flag) is not None:
            asked[name] = getattr(args, flag)
    if args.augment is not None:
        asked["data"] = {**(asked.get("data") or {}), "augment": args.augment}
    if asked.get("init_from"):
        asked = _continue(asked, recipe)
    optim = dict(asked.get("optim") or {})
    lr, note = lr_fields(optim, recipe, from_checkpoint=bool(asked.get("init_from")))
    if note:
        log.info(note)
    return merge(recipe, {**asked, "optim": {**optim, **lr}})


def _continue(asked: dict, recipe) -> dict:
    """A run from a checkpoint: its architecture, unless the user named one (the rule a job
    follows, mae_core.train.init)."""
    from mae_core.errors import InvalidParameterError
    from mae_core.train.init import start_architecture

    path = asked["init_from"]
    if not Path(path).is_file():
        raise InvalidParameterError(f"--init-from {path}: no such checkpoint file "
                                    "(give the path of a .safetensors / .pth file)")
    data = dict(asked.get("data") or {})
    arch = start_architecture(path, recipe, model=asked.get("model"), img_size=data.get("img_size"),
                              overrides=asked.get("model_overrides"),
                              label=f"--init-from {Path(path).name}",
                              leave_out="--model and the architecture flags")
    data["img_size"] = arch.img_size
    return {**asked, "model": arch.model, "model_overrides": arch.overrides, "data": data}


def run(args: argparse.Namespace) -> int:
    from mae_core.train import Trainer

    config = resolve_config(args)
    log.info("resolved config: %s", json.dumps(config.to_dict(), sort_keys=True))
    if args.launcher != "none":
        from .launch import submit

        return submit(args, config, resume=args.resume)
    result = Trainer(config, resume=args.resume, progress=not args.no_progress).run()
    if os.environ.get("RANK", "0") != "0":
        return 0
    print(json.dumps({"run_dir": str(result.run_dir), "status": result.status, "step": result.step,
                      "images_seen": result.images_seen, "final_loss": result.final_loss,
                      "skipped_images": result.skipped_images,
                      "export": str(result.export_path) if result.export_path else None}))
    return {"completed": 0, "stopped": 0, "interrupted": 143}[result.status]
