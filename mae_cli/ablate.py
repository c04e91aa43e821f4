"""``mae ablate FACTOR``: a small-scale reproduction of one of the paper's ablations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ablate", help="sweep one factor (mask ratio, strategy, decoder depth, norm-pix)",
        description="Train one short run per value of FACTOR with the `mae train` options given "
        "here, score each on held-out images (own objective at 75% random masking) and, with "
        "--probe-train/--probe-val, by a linear probe; writes FACTOR.json under ablations/ of the "
        "benchmark folder ($MAE_BENCH_DIR, default var/bench-results) for the analysis page. Example: mae ablate mask_ratio --data data/corpus/train "
        "--heldout data/corpus/heldout --img-size 64 --epochs 5",
    )
    p.add_argument("factor", choices=("mask_ratio", "strategy", "decoder_depth", "norm_pix"))
    p.add_argument("--values", nargs="+", help="values to try (default: the paper's)")
    p.add_argument("--data", required=True, help="training images")
    p.add_argument("--heldout", required=True, help="held-out images for the reconstruction loss")
    p.add_argument("--probe-train", help="labelled ImageFolder for a linear probe (optional)")
    p.add_argument("--probe-val")
    p.add_argument("--model", default="mae_vit_tiny_patch16")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--cache-px", type=int, default=96)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--device", default=None)
    p.add_argument("--runs-root", type=Path, default=None,
                   help="where the runs go (default: $MAE_RUNS_DIR, else var/runs)")
    p.add_argument("--output", type=Path, default=None,
                   help="default: $MAE_BENCH_DIR/ablations/FACTOR.json, else var/bench-results/...")
    p.set_defaults(func=run)


def _parse(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def run(args: argparse.Namespace) -> int:
    from mae_tools.ablate import run_ablation
    from mae_tools.bench.common import write_result
    from mae_core.runs import default_bench_dir, default_runs_dir
    from mae_core.train import DataConfig, OptimConfig, TrainConfig

    base = TrainConfig(
        model=args.model, data=DataConfig(path=args.data, img_size=args.img_size,
                                          cache_px=args.cache_px, repeats=args.repeats),
        optim=OptimConfig(lr=args.lr, warmup_epochs=max(0.5, args.epochs / 10)),
        epochs=args.epochs, batch_size=args.batch_size, norm_pix_loss=False, device=args.device,
        log_every=10, snapshot_every=0, ckpt_every_steps=10_000)
    probe = (args.probe_train, args.probe_val) if args.probe_train and args.probe_val else None
    values = [_parse(v) for v in args.values] if args.values else None
    result = run_ablation(args.factor, base, args.heldout, values, args.runs_root or default_runs_dir(),
                          probe)
    for row in result["rows"]:
        print(json.dumps(row))
    write_result(args.output or default_bench_dir() / "ablations" / f"{args.factor}.json", result)
    return 0
