"""What pretraining bought: k-NN and linear-probe accuracy of a checkpoint's encoder against a
randomly initialised encoder of the same architecture, on the same labelled data.

The labelled data is made offline from the bundled sample photos (static/samples): each photo
is a class, and its images are random crops (20-60% of the area by default, random aspect, flips) resized
to 256 px; every 5th crop of a class is held out. A few CPU minutes at the default sizes.

    python -m mae_tools.eval_gap [--checkpoint checkpoints/mae-lab-default.safetensors] [--crops 40]

``--data DIR`` uses a labelled folder instead (one sub-folder per class, e.g. the stamps of
``mae data build-labelled``), with the same every-5th-image hold-out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mae_core.defaults import default_checkpoint_path

# The bundled sample photos, from the repository root (where the README runs this).
SAMPLES = Path("static/samples")


def sample_crops(dest: Path, per_class: int, seed: int = 0, samples: Path = SAMPLES,
                 area: tuple[float, float] = (0.2, 0.6)) -> Path:
    rng = np.random.default_rng(seed)
    for photo in sorted(samples.glob("*.jpg")):
        with Image.open(photo) as img:
            rgb = img.convert("RGB")
        w, h = rgb.size
        (dest / photo.stem).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = rng.uniform(*area) * w * h
            aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            cw, ch = min(w, int(np.sqrt(size * aspect))), min(h, int(np.sqrt(size / aspect)))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            crop = rgb.crop((x, y, x + cw, y + ch)).resize((256, 256), Image.BICUBIC)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            crop.save(dest / photo.stem / f"crop_{i:03d}.jpg", quality=90)
    return dest


def main(argv: list[str] | None = None) -> int:
    from mae_core.checkpoint import load_model
    from mae_core.evaluation import LinprobeConfig, linear_probe
    from mae_core.evaluation.data import holdout_split
    from mae_core.evaluation.knn import KnnConfig, knn_classify

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(default_checkpoint_path()))
    p.add_argument("--crops", type=int, default=40, help="crops per sample photo (class)")
    p.add_argument("--area", type=float, nargs=2, default=(0.2, 0.6),
                   help="crop area as a fraction of the photo (smaller: harder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=None,
                   help="a labelled folder (a sub-folder per class) instead of the sample crops")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or sample_crops(Path(tmp) / "samples", args.crops, args.seed,
                                         area=tuple(args.area))
        train, val = holdout_split(data, Path(tmp) / "split", 5)
        pretrained = load_model(args.checkpoint)
        random_init = load_model(args.checkpoint)
        torch.manual_seed(args.seed)
        random_init.initialize_weights()  # the paper's initialisation, same architecture
        rows = {}
        for name, model in (("pretrained", pretrained), ("random init", random_init)):
            start = time.monotonic()
            knn = knn_classify(KnnConfig(train_dir=str(train), val_dir=str(val), k=20, device="cpu"), model)
            lin = linear_probe(LinprobeConfig(train_dir=str(train), val_dir=str(val), epochs=90,
                                              batch_size=32, blr=0.1, warmup_epochs=10,
                                              optimizer="sgd", device="cpu", seed=args.seed), model)
            rows[name] = {"knn_top1": knn["top1"], "knn_top5": knn.get("top5"),
                          "linprobe_top1": lin["top1"], "linprobe_top5": lin.get("top5"),
                          "num_train": knn["num_train"], "num_val": knn["num_val"],
                          "classes": len(knn["classes"]), "seconds": round(time.monotonic() - start, 1)}
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
