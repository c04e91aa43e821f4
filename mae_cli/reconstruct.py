"""``mae reconstruct IMAGE -o out.png``: the paper's Figure 4 for one image."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from mae_core.errors import ImageDecodeError
from mae_core.fields import MASK_RATIO, SEED
from mae_core.precision import PRECISIONS

from .fieldargs import field_type


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None: the output is strict JSON, never ``Infinity``
    (a masked PSNR is infinite when the masked patches are reproduced exactly)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reconstruct",
        help="mask an image and reconstruct it (four-panel figure)",
        description="Mask IMAGE, reconstruct it with an MAE checkpoint and write the paper's "
        "Figure 4 panels (original, masked, reconstruction, reconstruction + visible) as one PNG. "
        "Example: mae reconstruct static/samples/horses.jpg --ratio 0.75 --strategy block "
        "--seed 2 -o horses.png",
    )
    p.add_argument("image", type=Path, help="input image (any format Pillow reads)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output PNG path")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint file (default: the embedded default checkpoint)")
    p.add_argument("--ratio", type=field_type(MASK_RATIO), default=MASK_RATIO.default,
                   help=f"{MASK_RATIO.help}; {MASK_RATIO.bounds_text()} (default {MASK_RATIO.default})")
    p.add_argument("--strategy", default="random", help="random | block | grid (grid: 0.75 only)")
    p.add_argument("--seed", type=field_type(SEED), default=None,
                   help=f"mask seed, {SEED.bounds_text()} (default: random, printed)")
    p.add_argument("--resize", default="crop", choices=("crop", "keep-aspect"),
                   help="crop: resize + centre crop (default); keep-aspect: non-square patch grid")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto (default: bf16 on GPUs, fp32 on CPU), fast (bf16 also on CPUs with "
                   "native bf16), bf16, fp32")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mae_core.defaults import default_checkpoint_path
    from mae_core.figure import compose_figure
    from mae_core.reconstruct import Reconstructor

    checkpoint = args.checkpoint or default_checkpoint_path()
    try:
        image = Image.open(args.image)
        image.load()
    except (OSError, UnidentifiedImageError) as exc:
        raise ImageDecodeError(f"cannot read image {args.image}: {exc}") from None
    reconstructor = Reconstructor.from_checkpoint(checkpoint, device=args.device,
                                                 precision=args.precision)
    rec = reconstructor.reconstruct(
        image, mask_ratio=args.ratio, strategy=args.strategy, seed=args.seed, resize=args.resize
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    compose_figure(rec).save(args.output)
    summary = {"output": str(args.output), "checkpoint": str(checkpoint), "seed": rec.seed,
               "mask_ratio": rec.mask_ratio, "strategy": rec.strategy,
               "uses_target_stats": rec.uses_target_stats, **rec.metrics}
    print(json.dumps(json_safe(summary), indent=2, allow_nan=False))
    return 0
