"""``mae data build-corpus``: assemble the natural-image corpus from Debian packages;
``mae data build-labelled``: the small labelled demo dataset from the tuxpaint stamps."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mae data`` and its ``build-corpus`` subcommand."""
    from mae_tools.corpus import DEFAULT_COMPOSITES, DEFAULT_PACKAGES

    p = subparsers.add_parser(
        "data", help="build training data", description="Build and inspect training data."
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    build = sub.add_parser(
        "build-corpus",
        help="assemble natural photos from freely licensed Debian packages",
        description=(
            "Download Debian packages with `apt-get download` (nothing is installed), extract "
            "them, keep colour photographs (short side >= 224 px; flat, vector and duplicate "
            "images dropped), add seeded composites of cut-out object photos on photo crops, "
            "and write OUT/train/*.jpg, OUT/heldout/*.jpg and OUT/manifest.json with the source "
            "package, version, path and licence of every file. The held-out split is a function "
            "of each image's content hash: held-out = sha256('split:' + hash) < fraction. "
            "Same packages + same options = same manifest. "
            "Example: mae data build-corpus data/corpus --cache-dir data/apt-cache"
        ),
    )
    build.add_argument("out", type=Path, help="output folder (replaced if it holds a corpus)")
    build.add_argument(
        "--size", type=int, default=256, help="short side of output images in px (default 256)"
    )
    build.add_argument(
        "--heldout-fraction",
        type=float,
        default=0.1,
        help="share of source images kept out of training (default 0.1)",
    )
    build.add_argument(
        "--composites",
        type=int,
        default=DEFAULT_COMPOSITES,
        help=f"number of stamp-on-photo composites (default {DEFAULT_COMPOSITES})",
    )
    build.add_argument("--seed", type=int, default=0, help="seed for composites (default 0)")
    build.add_argument(
        "--packages",
        nargs="+",
        default=list(DEFAULT_PACKAGES),
        metavar="PKG",
        help="Debian packages to take images from (default: the curated list)",
    )
    build.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="keep downloaded .deb files here; a warm cache needs no network",
    )
    build.add_argument(
        "--workers", type=int, default=None, help="decoding processes (default: up to 2)"
    )
    build.set_defaults(func=run_build_corpus)

    lab = sub.add_parser(
        "build-labelled",
        help="a small labelled demo dataset (one folder per class) from tuxpaint stamps",
        description=(
            "Take the raster stamps of the Debian package tuxpaint-stamps-default (GPL-2) from a "
            "few category folders (birds, fish, insects, mammals, fruit, vegetables, flowers, "
            "vehicles), centre each on a light background, resize to SIZE px square and write "
            "OUT/<class>/<name>.png, OUT/manifest.json and OUT/LICENSES.md (source path and "
            "licence of every file). Use OUT as the labelled dataset of /features and k-NN jobs. "
            "Example: mae data build-labelled --out data/labelled-demo "
            "--from tuxpaint-stamps-default_2022.06.04-1_all.deb"
        ),
    )
    lab.add_argument("--out", type=Path, required=True,
                     help="output folder (replaced if it holds a dataset built by this command)")
    lab.add_argument("--from", dest="source", type=Path, default=None, metavar="DEB_OR_DIR",
                     help="a local .deb or a `dpkg -x` folder of the package "
                          "(default: apt-get download it)")
    lab.add_argument("--cache-dir", type=Path, default=None,
                     help="keep the downloaded .deb here when --from is not given")
    lab.add_argument("--size", type=int, default=224, help="side of the square images (224)")
    lab.add_argument("--min-per-class", type=int, default=10,
                     help="leave out classes with fewer usable stamps (default 10)")
    lab.set_defaults(func=run_build_labelled)


def run_build_corpus(args: argparse.Namespace) -> int:
    """Build the corpus and print a per-package summary table."""
    from mae_tools.corpus import build_corpus

    manifest = build_corpus(
        args.out,
        packages=args.packages,
        size=args.size,
        heldout_fraction=args.heldout_fraction,
        composites=args.composites,
        seed=args.seed,
        cache_dir=args.cache_dir,
        workers=args.workers,
    )
    print(format_summary(manifest.to_dict(), args.out))
    return 0


def run_build_labelled(args: argparse.Namespace) -> int:
    """Build the labelled demo dataset and print images per class, licences and size."""
    from mae_tools.corpus.labelled import build_labelled

    manifest = build_labelled(args.out, source=args.source, cache_dir=args.cache_dir,
                              size=args.size, min_per_class=args.min_per_class)
    for name, count in manifest["classes"].items():
        print(f"{name:12s} {count:4d}")
    for name, count in manifest["dropped_classes"].items():
        print(f"{name:12s} {count:4d}  (left out: fewer than {args.min_per_class})")
    pkg = manifest["packages"][0]
    total = sum(f.stat().st_size for f in Path(args.out).rglob("*") if f.is_file())
    print(f"{manifest['counts']['total']} images in {len(manifest['classes'])} classes from "
          f"{pkg['package']} {pkg['version']} ({', '.join(pkg['licences_used'])}), "
          f"{total / 1e6:.1f} MB in {args.out}")
    return 0


def format_summary(manifest: dict, out: Path | None = None) -> str:
    """A plain-text table: photos per package and split, stamps, licences, totals, size."""
    rows = [("package", "version", "train", "heldout", "stamps", "licences of files used")]
    for pkg in manifest["packages"]:
        rows.append(
            (
                pkg["package"],
                pkg["version"],
                str(pkg["photos"]["train"]),
                str(pkg["photos"]["heldout"]),
                str(pkg["stamps"]),
                ", ".join(pkg.get("licences_used") or pkg["licences"])[:60],
            )
        )
    composites = [e for e in manifest["entries"] if e["kind"] == "composite"]
    rows.append(
        (
            "(composites)",
            "",
            str(sum(e["split"] == "train" for e in composites)),
            str(sum(e["split"] == "heldout" for e in composites)),
            "",
            "",
        )
    )
    counts = manifest["counts"]
    rows.append(("total", "", str(counts["train"]), str(counts["heldout"]), "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    for failure in manifest["failures"]:
        lines.append(f"FAILED {failure['package']}: {failure['reason']}")
    if out is not None:
        total = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
        lines.append(f"{counts['total']} images, {total / 1e6:.1f} MB in {out}")
    return "\n".join(lines)
