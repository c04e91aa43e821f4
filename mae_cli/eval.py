"""``mae eval linprobe|finetune``: the paper's downstream protocols on ImageFolder data."""

from __future__ import annotations

import argparse
import dataclasses
import json


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="pretrained checkpoint (any supported format)")
    p.add_argument("--train", dest="train_dir", required=True, help="ImageFolder train root")
    p.add_argument("--val", dest="val_dir", required=True, help="ImageFolder val root")
    p.add_argument("--output-dir", default="", help="folder for the result JSON")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--blr", type=float, help="base lr; lr = blr * batch / 256")
    p.add_argument("--lr", type=float, help="absolute lr (overrides blr)")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--pool", choices=("cls", "mean"))
    p.add_argument("--device")
    p.add_argument("--seed", type=int)
    p.add_argument("--num-workers", type=int)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="linear probe or fine-tune a pretrained encoder")
    sub = p.add_subparsers(dest="eval_command", metavar="PROTOCOL", required=True)
    lin = sub.add_parser(
        "linprobe", help="frozen encoder + BatchNorm + linear head (paper Table 10)",
        description="Linear probing: features from the frozen encoder (cls token by default), "
        "BatchNorm1d(affine=False) + linear head trained with LARS (blr 0.1, 90 epochs, "
        "10 warmup). Writes linprobe.json with top-1/top-5.")
    _common(lin)
    lin.add_argument("--optimizer", choices=("lars", "sgd"))
    lin.set_defaults(func=run_linprobe)
    ft = sub.add_parser(
        "finetune", help="end-to-end or partial fine-tuning (paper Table 9, Figure 9)",
        description="Fine-tuning with layer-wise lr decay, drop path, mixup/cutmix and label "
        "smoothing. --tune-blocks K trains only the last K blocks (Figure 9).")
    _common(ft)
    ft.add_argument("--layer-decay", type=float)
    ft.add_argument("--drop-path", type=float)
    ft.add_argument("--mixup", type=float)
    ft.add_argument("--cutmix", type=float)
    ft.add_argument("--smoothing", type=float)
    ft.add_argument("--tune-blocks", type=int, help="fine-tune only the last K blocks")
    ft.set_defaults(func=run_finetune)


def _config(cls, args):
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return cls(**values)


def run_linprobe(args: argparse.Namespace) -> int:
    from mae_core.evaluation import LinprobeConfig, linear_probe

    result = linear_probe(_config(LinprobeConfig, args))
    print(json.dumps({k: result[k] for k in ("top1", "top5", "num_train", "num_val")}))
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from mae_core.evaluation import FinetuneConfig, finetune

    result = finetune(_config(FinetuneConfig, args))
    print(json.dumps({k: result[k] for k in ("top1", "top5", "best", "trainable_params")}))
    return 0
