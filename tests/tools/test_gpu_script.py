"""CPU dry run of the prepared GPU session script (scripts/gpu_session.sh) at toy size.

The real script runs with environment variables that shrink everything: a tiny model at 64 px,
a few steps, a corpus built by the real builder from a generated package, the CPU, eager mode,
and $OUT a temp folder. What a device run must return is then checked file by file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mae_tools import corpus as C
from mae_tools.testing import write_checkpoint
from support import REPO

pytestmark = pytest.mark.slow

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2020 Someone
License: CC0-1.0
"""


def _photo(seed: int, side: int = 240) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    img = np.full((side, side, 3), 128.0)
    for c in range(3):
        for _ in range(3):
            fx, fy = rng.uniform(0.5, 4.0, 2)
            img[..., c] += rng.uniform(15, 40) * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 6))
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def _corpus(tmp_path: Path) -> Path:
    root = tmp_path / "extracted" / "fake-photos"
    doc = root / "usr/share/doc/fake-photos"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    photos = root / "usr/share/backgrounds/fake"
    photos.mkdir(parents=True)
    for i in range(16):
        Image.fromarray(_photo(i)).save(photos / f"photo{i}.jpg", quality=95)
    pkg = C.ExtractedPackage.from_root("fake-photos", "1.0-1", root)
    out = tmp_path / "corpus"
    C.build_corpus_from_extracted([pkg], out, size=64, heldout_fraction=0.3, composites=0, workers=1)
    return out


def test_gpu_session_script_dry_run_on_cpu(tmp_path):
    corpus = _corpus(tmp_path)
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert manifest["counts"]["heldout"] >= 1 and manifest["counts"]["train"] >= 8
    # The "old default": a tiny random checkpoint whose card says it trained on fake-photos.
    old = write_checkpoint(tmp_path / "old", "old-default", card={
        "data": {"corpus": {"sources": [{"package": "fake-photos", "licences_used": ["CC0-1.0"]}]}},
        "training": {"note": "random init"}})
    out = tmp_path / "out"
    env = {
        **os.environ, "OUT": str(out), "PYTHON": sys.executable, "DEVICE": "cpu",
        "WORK_DIR": str(tmp_path / "work"), "OLD_CHECKPOINT": str(old),
        "MODEL": "mae_vit_tiny_patch16", "IMG_SIZE": "64", "DEC_DIM": "32", "DEC_DEPTH": "1",
        "BATCH": "4", "CALIB_STEPS": "2", "TRAIN_MINUTES": "0.01", "EPOCH_SAMPLES": "8",
        "COMPILE": "0", "AMP": "off", "WORKERS": "0", "CACHE_PX": "0", "QUALITY_LIMIT": "2",
        "BENCH_MODELS": "mae_vit_tiny_patch16", "BENCH_MODES": "eager", "BENCH_IMG_SIZE": "32",
        "BENCH_BATCH": "2", "BENCH_STEPS": "1", "BUDGET_S": "3600",
    }
    proc = subprocess.run(["bash", "scripts/gpu_session.sh", str(corpus)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1500)
    log = (out / "session.log").read_text()
    assert proc.returncode == 0, log[-4000:]
    for stage in ("train", "convert to fp16", "quality: new", "quality: old", "training throughput and MFU", "done"):
        assert f"] {stage}" in log, stage
    assert "calibration:" in log and "beats the old default in every cell" in log

    # The checkpoint comes back in parts; put together it is an fp16 model with its card.
    parts = sorted(out.glob("mae-lab-default.safetensors.part-*"))
    assert parts
    model_file = tmp_path / "mae-lab-default.safetensors"
    model_file.write_bytes(b"".join(p.read_bytes() for p in parts))
    (tmp_path / "mae-lab-default.json").write_bytes((out / "mae-lab-default.json").read_bytes())
    from safetensors import safe_open

    from mae_core.checkpoint import load_model

    with safe_open(str(model_file), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    assert load_model(model_file).has_decoder
    card = json.loads((out / "mae-lab-default.json").read_text())
    assert card["name"] == "mae-lab-default" and card["dtype"] == "float16"
    assert card["norm_pix_loss"] is False
    assert card["data"]["corpus"]["sources"][0]["licences_used"] == ["CC0-1.0"]
    cells = card["quality"]["rows"]
    assert {(r["ratio"], r["strategy"]) for r in cells} >= {(0.75, "random")}
    assert card["quality"]["compared_with"]["checkpoint"] == old.name

    bench = json.loads((out / "bench_train_mfu.json").read_text())
    (row,) = bench["rows"]
    assert row["model"] == "mae_vit_tiny_patch16" and row["mode"] == "eager"
    assert row["images_per_s"] > 0 and 0 < row["mfu"] and bench["meta"]["peak_source"] == "measured matmul"

    with tarfile.open(out / "results.tgz") as tar:
        names = set(tar.getnames())
    for name in ("quality_new.json", "quality_old.json", "compare.json", "metrics.jsonl",
                 "train.log", "quality_legacy_new.json"):
        assert f"./{name}" in names, name
    # What comes back fits the device's return limits: at most 8 files, 16 MiB each.
    files = [f for f in out.rglob("*") if f.is_file()]
    assert len(files) <= 8 and all(f.stat().st_size <= 16 * 2**20 for f in files)
