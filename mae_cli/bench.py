"""``mae bench train|infer|quality``: benchmarks that print a table and write JSON.

They measure; they never pass or fail. Numbers from shared machines are noisy, so compare rows
from the same run (each report carries its own matmul ceiling measured in that run).

JSON goes to ``--output``, by default the benchmark folder ($MAE_BENCH_DIR, else var/bench-results):
never over the numbers shipped in the repository's bench-results/ unless that path is asked for.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mae_tools.bench.common import format_table, write_result
from mae_core.precision import PRECISIONS

OUTPUT_HELP = "JSON output (default: {name} in $MAE_BENCH_DIR, else var/bench-results/)"


def add_output(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--output", type=Path, default=None, help=OUTPUT_HELP.format(name=name))
    parser.set_defaults(output_name=name)


def output_path(args: argparse.Namespace) -> Path:
    from mae_core.runs import default_bench_dir

    return args.output or default_bench_dir() / args.output_name


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="speed and quality benchmarks (table + JSON)")
    sub = p.add_subparsers(dest="bench_command", metavar="BENCH", required=True)

    tr = sub.add_parser(
        "train", help="paper Table 2 on this machine: visible-only encoder vs mask tokens",
        description="Training-step wall-clock for the Table 2 rows (mask-token encoder with an "
        "8-block decoder as reference; visible-only encoder with 8- and 1-block decoders), with "
        "images/s and achieved GFLOP/s next to a matmul rate measured in the same run.")
    tr.add_argument("--model", default="mae_vit_base_patch16")
    tr.add_argument("--img-size", type=int, default=224)
    tr.add_argument("--batch-size", type=int, default=8)
    tr.add_argument("--steps", type=int, default=3, help="timed steps per row (median)")
    tr.add_argument("--device", default=None)
    add_output(tr, "bench_train.json")
    tr.add_argument("--mfu", nargs="+", metavar="MODEL", default=None,
                    help="instead of Table 2: images/s and MFU of these presets' training steps, "
                    "eager and torch.compile'd; MFU = 3 x forward FLOPs x images/s / peak "
                    "(peak: --peak-tflops, else the GPU's bf16 dense datasheet peak, else the "
                    "matmul rate measured in the run)")
    tr.add_argument("--mfu-modes", nargs="+", default=["eager", "compiled"],
                    help="with --mfu: eager and/or compiled (default both)")
    tr.add_argument("--peak-tflops", type=float, default=None, help="with --mfu: the MFU peak")
    tr.set_defaults(func=run_train)

    inf = sub.add_parser(
        "infer", help="reconstruction images/s at batch 1 and 16",
        description="Reconstruction throughput of each preset (random weights, 75% random masking): "
        "ms per batch and images/s at each batch size, with achieved GFLOP/s next to a matmul rate "
        "measured in the same run (FLOPs per block 24*N*D^2 + 4*N^2*D; encoder on the visible "
        "tokens + cls, decoder on all L + 1).")
    inf.add_argument("--models", nargs="+", default=["mae_vit_tiny_patch16", "mae_vit_base_patch16"])
    inf.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    inf.add_argument("--img-size", type=int, default=224)
    inf.add_argument("--repeats", type=int, default=5)
    inf.add_argument("--device", default=None)
    inf.add_argument("--precision", choices=PRECISIONS, default="auto",
                     help="auto (default: bf16 autocast on GPUs, fp32 on CPU), fast, bf16, fp32")
    add_output(inf, "bench_infer.json")
    inf.set_defaults(func=run_infer)

    peer = sub.add_parser(
        "peer", help="ours vs Hugging Face ViTMAEForPreTraining, same weights and masks",
        description="Inference (batch 1 and 16) and training-step images/s of MAE Lab's model "
        "and transformers' ViTMAEForPreTraining loaded with the same weights, timed interleaved "
        "in one run; reports the speed-up and the largest output difference.")
    peer.add_argument("--models", nargs="+", default=["mae_vit_tiny_patch16", "mae_vit_base_patch16"])
    peer.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    peer.add_argument("--train-batch", type=int, default=8)
    peer.add_argument("--repeats", type=int, default=7, help="timed rounds per row (median kept)")
    peer.add_argument("--device", default=None)
    add_output(peer, "bench_peer.json")
    peer.set_defaults(func=run_peer)

    q = sub.add_parser(
        "quality", help="masked-patch PSNR of a checkpoint vs mean-fill and Telea inpainting",
        description="Reconstruct held-out images at each ratio and strategy and compare the "
        "masked-patch error against mean-colour fill and OpenCV Telea inpainting on the same masks.")
    q.add_argument("images", type=Path, help="folder of held-out images")
    q.add_argument("--checkpoint", type=Path, default=None, help="default: the embedded checkpoint")
    q.add_argument("--ratios", nargs="+", type=float, default=[0.5, 0.75, 0.9])
    q.add_argument("--strategies", nargs="+", default=["random", "block", "grid"])
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--limit", type=int, default=None, help="use at most this many images")
    q.add_argument("--device", default=None)
    add_output(q, "bench_quality.json")
    q.add_argument("--write-card", action="store_true",
                   help="also record the results in the checkpoint's JSON card under 'quality'")
    q.set_defaults(func=run_quality)


def run_train(args: argparse.Namespace) -> int:
    from mae_tools.bench.train_speed import bench_train, bench_train_mfu

    if args.mfu:
        result = bench_train_mfu(args.mfu, args.img_size, args.batch_size, steps=args.steps,
                                 device=args.device, modes=args.mfu_modes,
                                 peak_tflops=args.peak_tflops)
        m = result["meta"]
        print(f"MAE training steps on {m.get('gpu') or m['cpu']} @ {m['img_size']} px, batch "
              f"{m['batch_size']}; MFU against {m['peak_tflops']:.0f} TFLOP/s ({m['peak_source']})")
        print(format_table(result["rows"], [
            ("model", "model", "s"), ("mode", "mode", "s"), ("step_s", "step s", ".3f"),
            ("images_per_s", "img/s", ".1f"), ("model_tflops_per_s", "TFLOP/s", ".1f"),
            ("mfu", "MFU", ".1%"), ("first_step_s", "1st step s", ".1f")]))
        write_result(output_path(args), result)
        return 0

    result = bench_train(args.model, args.img_size, args.batch_size, steps=args.steps, device=args.device)
    m = result["meta"]
    print(f"Table 2 on {m.get('gpu') or m['cpu']} — {m['model']} @ {m['img_size']} px, "
          f"batch {m['batch_size']}, matmul {m['matmul_gflops']:.0f} GFLOP/s")
    print(format_table(result["rows"], [
        ("encoder", "encoder", "s"), ("decoder_depth", "dec", "d"), ("step_s", "step s", ".3f"),
        ("images_per_s", "img/s", ".1f"), ("speedup", "speed-up", ".2f"),
        ("gflops_per_s", "GFLOP/s", ".0f"), ("fraction_of_matmul", "of matmul", ".0%")]))
    print("paper (ViT-L, 128 TPU-v3): 2.8x with an 8-block decoder, 3.7x with 1 block")
    write_result(output_path(args), result)
    return 0


def run_infer(args: argparse.Namespace) -> int:
    from mae_tools.bench.infer_speed import bench_infer

    result = bench_infer(args.models, args.batch_sizes, args.img_size, repeats=args.repeats,
                         device=args.device, precision=args.precision)
    print(format_table(result["rows"], [
        ("model", "model", "s"), ("batch_size", "batch", "d"), ("ms_per_batch", "ms/batch", ".1f"),
        ("images_per_s", "img/s", ".1f"), ("gflops_per_s", "GFLOP/s", ".0f"),
        ("fraction_of_matmul", "of matmul", ".0%")]))
    write_result(output_path(args), result)
    return 0


def run_peer(args: argparse.Namespace) -> int:
    from mae_tools.bench.peer import bench_peer

    result = bench_peer(args.models, args.batch_sizes, args.train_batch, repeats=args.repeats,
                        device=args.device)
    print(f"peer: {result['meta']['peer']}")
    print(format_table(result["rows"], [
        ("model", "model", "s"), ("mode", "mode", "s"), ("batch_size", "batch", "d"),
        ("ours_images_per_s", "ours img/s", ".1f"), ("peer_images_per_s", "peer img/s", ".1f"),
        ("speedup", "ours/peer", ".2f"), ("max_abs_diff", "max |diff|", ".1e")]))
    write_result(output_path(args), result)
    return 0


def run_quality(args: argparse.Namespace) -> int:
    from mae_tools.bench.quality import format_table as quality_table, run_quality_benchmark
    from mae_core.defaults import default_checkpoint_path
    from mae_core.reconstruct import Reconstructor
    from mae_core.train.data import find_images

    checkpoint = args.checkpoint or default_checkpoint_path()
    reconstructor = Reconstructor.from_checkpoint(checkpoint, device=args.device)
    paths = find_images(args.images)[: args.limit]
    result = run_quality_benchmark(reconstructor, paths, args.ratios, args.strategies, args.seed)
    print(quality_table(result))
    write_result(output_path(args), result)
    if args.write_card:
        record_quality_in_card(checkpoint, result)
    return 0


def record_quality_in_card(checkpoint: Path, result: dict) -> None:
    """Store the benchmark's rows (not per-image data) in the checkpoint's card."""
    import json

    from mae_core.checkpoint.card import card_path_for, read_card
    from mae_core.errors import CheckpointError
    from mae_core.io_utils import write_json_atomic

    card = read_card(checkpoint)
    if card is None:
        raise CheckpointError(f"{checkpoint} has no JSON card to record the results in")
    card["quality"] = {"benchmark": "mae bench quality", "meta": result.get("meta", {}),
                       "rows": result.get("rows", [])}
    write_json_atomic(card_path_for(checkpoint), json.loads(json.dumps(card)))
