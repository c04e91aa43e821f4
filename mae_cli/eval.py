"""``mae eval knn|linprobe|finetune``: the paper's downstream protocols on ImageFolder data."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

OUTPUT_HELP = "folder for {name} (default: the current directory)"
BY_SIZE = "by model size, see above"
# Shown in --help without importing torch; a test checks them against the config dataclasses.
LINPROBE_DEFAULTS = dict(epochs=90, batch_size=256, blr=0.1, min_lr=0.0, weight_decay=0.0,
                         warmup_epochs=10)
FINETUNE_DEFAULTS = dict(epochs=BY_SIZE, batch_size=64, blr=BY_SIZE, min_lr=1e-6,
                         weight_decay=0.05, warmup_epochs=5, layer_decay=BY_SIZE,
                         drop_path=BY_SIZE, mixup=0.8, cutmix=1.0, smoothing=0.1,
                         aa="rand-m9-mstd0.5-inc1", reprob=0.25)


def _common(p: argparse.ArgumentParser, result_name: str, defaults: dict) -> None:
    p.add_argument("--checkpoint", required=True, help="pretrained checkpoint (any supported format)")
    p.add_argument("--train", dest="train_dir", required=True, help="ImageFolder train root")
    p.add_argument("--val", dest="val_dir", required=True, help="ImageFolder val root")
    p.add_argument("--output-dir", default=".", help=OUTPUT_HELP.format(name=result_name))
    p.add_argument("--epochs", type=int, help=f"default {defaults['epochs']}")
    p.add_argument("--batch-size", type=int, help=f"default {defaults['batch_size']}")
    p.add_argument("--blr", type=float, help=f"base lr; lr = blr * batch / 256 (default {defaults['blr']})")
    p.add_argument("--lr", type=float, help="absolute lr (overrides blr)")
    p.add_argument("--min-lr", type=float, help=f"lr at the end of the cosine schedule (default {defaults['min_lr']})")
    p.add_argument("--weight-decay", type=float, help=f"default {defaults['weight_decay']}")
    p.add_argument("--warmup-epochs", type=float, help=f"default {defaults['warmup_epochs']}")
    p.add_argument("--device")
    p.add_argument("--seed", type=int)
    p.add_argument("--num-workers", type=int)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="linear probe or fine-tune a pretrained encoder")
    sub = p.add_subparsers(dest="eval_command", metavar="PROTOCOL", required=True)
    lin = sub.add_parser(
        "linprobe", help="frozen encoder + BatchNorm + linear head (paper Table 10)",
        description="Linear probing as main_linprobe.py: cls-token features of the frozen "
        "encoder, BatchNorm1d(affine=False) + linear head, LARS (blr 0.1, wd 0, 90 epochs, "
        "10 warmup). --mode fast (default) trains on features extracted once from centre "
        "crops; --mode paper feeds a fresh RandomResizedCrop + flip through the encoder every "
        "epoch. Validation: resize 256, centre-crop 224 (bicubic). Writes linprobe.json with "
        "top-1 (and top-5 when there are more than 5 classes).")
    _common(lin, "linprobe.json", LINPROBE_DEFAULTS)
    lin.add_argument("--mode", choices=("fast", "paper"),
                     help="fast: cached centre-crop features; paper: augmented crops each epoch")
    lin.add_argument("--pool", choices=("cls", "mean"), help="cls token (default, --cls_token) "
                     "or fc_norm of the mean patch token (--global_pool)")
    lin.add_argument("--optimizer", choices=("lars", "sgd"))
    lin.set_defaults(func=run_linprobe)
    ft = sub.add_parser(
        "finetune", help="end-to-end or partial fine-tuning (paper Table 9, Figure 9)",
        description="Fine-tuning as main_finetune.py: global average pooling + fc_norm, every "
        "parameter trained (pos_embed too) with layer-wise lr decay, drop path, RandAugment "
        "rand-m9-mstd0.5-inc1, random erasing 0.25, mixup 0.8 / cutmix 1.0 and label smoothing "
        "0.1 (timm). --epochs, --blr, --layer-decay and --drop-path default to FINETUNE.md's "
        "values for the model's size (ViT-B: 100, 5e-4, 0.65, 0.1; ViT-L: 50, 1e-3, 0.75, 0.2; "
        "ViT-H: 50, 1e-3, 0.75, 0.3). --tune-blocks K trains only the last K blocks (Figure 9). "
        "Writes finetune.json.")
    d = FINETUNE_DEFAULTS
    _common(ft, "finetune.json", d)
    ft.add_argument("--pool", choices=("mean", "cls"), help="mean (default, --global_pool) or "
                    "cls (--cls_token)")
    ft.add_argument("--input-size", type=int, help="train/eval size (default: the checkpoint's); "
                    "pos_embed is interpolated bicubically")
    ft.add_argument("--layer-decay", type=float, help=f"layer-wise lr decay ({d['layer_decay']})")
    ft.add_argument("--drop-path", type=float, help=f"stochastic depth rate ({d['drop_path']})")
    ft.add_argument("--mixup", type=float, help=f"mixup alpha (default {d['mixup']}; 0 = off)")
    ft.add_argument("--cutmix", type=float, help=f"cutmix alpha (default {d['cutmix']}; 0 = off)")
    ft.add_argument("--smoothing", type=float, help=f"label smoothing (default {d['smoothing']})")
    ft.add_argument("--aa", help=f"timm RandAugment policy (default {d['aa']}; '' = off)")
    ft.add_argument("--reprob", type=float, help=f"random erasing probability (default {d['reprob']})")
    ft.add_argument("--tune-blocks", type=int, help="fine-tune only the last K blocks")
    ft.set_defaults(func=run_finetune)
    knn = sub.add_parser(
        "knn", help="k-nearest-neighbour classification on frozen features (minutes on a CPU)",
        description="k-NN as DINO-style evaluations: frozen-encoder features of the official "
        "evaluation crops, L2-normalised; each val image's k most cosine-similar train images "
        "vote for their class with weight exp(similarity / T). Writes knn.json with top-1 (and "
        "top-5 with more than 5 classes), the confusion matrix and per-class accuracy.")
    knn.add_argument("--checkpoint", required=True, help="pretrained checkpoint (any supported format)")
    knn.add_argument("--train", dest="train_dir", required=True, help="ImageFolder train root")
    knn.add_argument("--val", dest="val_dir", required=True, help="ImageFolder val root")
    knn.add_argument("--output-dir", default=".", help=OUTPUT_HELP.format(name="knn.json"))
    knn.add_argument("--k", type=int, help="neighbours that vote (default 20)")
    knn.add_argument("--temperature", type=float, help="vote weight exp(sim / T) (default 0.07)")
    knn.add_argument("--pool", choices=("cls", "mean"), help="cls token (default) or mean patch token")
    knn.add_argument("--batch-size", type=int, help="images per forward pass (default 64)")
    knn.add_argument("--device")
    knn.add_argument("--num-workers", type=int)
    knn.set_defaults(func=run_knn)


def _config(cls, args):
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return cls(**values)


def _report(result: dict, keys: tuple[str, ...], path: Path) -> None:
    print(json.dumps({k: result[k] for k in keys if k in result}))
    print(f"wrote {path}", file=sys.stderr)


def run_linprobe(args: argparse.Namespace) -> int:
    from mae_core.evaluation import LinprobeConfig, linear_probe

    config = _config(LinprobeConfig, args)
    result = linear_probe(config)
    _report(result, ("top1", "top5", "num_train", "num_val"), Path(config.output_dir) / "linprobe.json")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from mae_core.evaluation import FinetuneConfig, finetune

    config = _config(FinetuneConfig, args)
    result = finetune(config)
    _report(result, ("top1", "top5", "best", "trainable_params"), Path(config.output_dir) / "finetune.json")
    return 0


def run_knn(args: argparse.Namespace) -> int:
    from mae_core.evaluation.knn import KnnConfig, knn_classify

    config = _config(KnnConfig, args)
    result = knn_classify(config)
    _report(result, ("top1", "top5", "num_train", "num_val"), Path(config.output_dir) / "knn.json")
    return 0
