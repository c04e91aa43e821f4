"""The ``mae`` command line. Each subcommand lives in its own module with ``add_parser``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from mae_core.errors import MAEError

# Modules under mae_cli that register subcommands, in help order.
SUBCOMMANDS = ("reconstruct", "train", "eval", "ablate", "bench", "serve", "worker", "checkpoints",
               "models", "data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mae",
        description="MAE Lab: train, evaluate and visualise Masked Autoencoders (He et al. 2021).",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue  # a subcommand module that is not part of this build
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MAEError as exc:
        print(f"mae: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mae: interrupted", file=sys.stderr)
        return 130
