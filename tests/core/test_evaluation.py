import json

import numpy as np
import pytest
import torch
from PIL import Image

from mae_core import create_model, save_model
from mae_cli import main
from mae_core.evaluation import LinprobeConfig, linear_probe
from mae_core.evaluation.finetune import MAEClassifier, freeze_for_partial, layer_decay_groups
from support.train_helpers import TINY

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 220, 60)]


def _labelled(root, per_class, seed):
    """Four classes: noisy images around a class colour, with a class-specific stripe pattern."""
    rng = np.random.default_rng(seed)
    for c, colour in enumerate(COLOURS):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            img = np.array(colour, dtype=np.float64) + rng.normal(0, 30, (32, 32, 3))
            img[:, c * 8:(c + 1) * 8] *= 0.5
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    base = tmp_path_factory.mktemp("labelled")
    return _labelled(base / "train", 12, 0), _labelled(base / "val", 6, 1)


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return create_model("mae_vit_tiny_patch16", img_size=32, patch_size=8, **TINY)


def test_linear_probe_beats_chance_by_a_wide_margin(labelled, encoder, tmp_path):
    train, val = labelled
    result = linear_probe(LinprobeConfig(train_dir=str(train), val_dir=str(val), epochs=30,
                                         batch_size=16, warmup_epochs=3, device="cpu", optimizer="sgd", lr=0.05,
                                         output_dir=str(tmp_path)), model=encoder)
    assert result["top1"] >= 75.0  # chance is 25%
    saved = json.loads((tmp_path / "linprobe.json").read_text())
    assert saved["top1"] == result["top1"] and saved["classes"] == [f"class_{i}" for i in range(4)]


def test_partial_finetune_trains_only_the_last_blocks(encoder):
    clf = MAEClassifier(encoder, 4)
    freeze_for_partial(clf, 1)
    trainable = {n for n, p in clf.named_parameters() if p.requires_grad}
    assert "encoder.blocks.1.attn.qkv.weight" in trainable and "encoder.norm.weight" in trainable
    assert "encoder.blocks.0.attn.qkv.weight" not in trainable
    assert "encoder.patch_embed.proj.weight" not in trainable
    assert not any(n.startswith("encoder.decoder") for n in trainable)
    assert {"head.weight", "fc_norm.weight"} <= trainable
    clf0 = MAEClassifier(encoder, 4)
    freeze_for_partial(clf0, 0)
    assert {n for n, p in clf0.named_parameters() if p.requires_grad} == {
        "head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}


def test_layer_decay_scales(encoder):
    clf = MAEClassifier(encoder, 4)
    groups = layer_decay_groups(clf, 0.05, 0.5)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(clf.named_parameters())
    depth = encoder.config.depth  # 2
    assert by_param[id(named["head.weight"])]["lr_scale"] == 1.0
    assert by_param[id(named["encoder.blocks.1.mlp.fc1.weight"])]["lr_scale"] == 0.5
    assert by_param[id(named["encoder.blocks.0.mlp.fc1.weight"])]["lr_scale"] == 0.25
    assert by_param[id(named["encoder.patch_embed.proj.weight"])]["lr_scale"] == 0.5 ** (depth + 1)
    assert by_param[id(named["encoder.blocks.0.mlp.fc1.bias"])]["weight_decay"] == 0.0


def test_finetune_cli_learns(labelled, encoder, tmp_path):
    train, val = labelled
    ckpt = save_model(encoder, tmp_path / "enc.safetensors")
    code = main(["eval", "finetune", "--checkpoint", str(ckpt), "--train", str(train), "--val",
                 str(val), "--epochs", "8", "--batch-size", "16", "--lr", "2e-3", "--warmup-epochs",
                 "1", "--mixup", "0", "--cutmix", "0", "--drop-path", "0", "--device", "cpu",
                 "--output-dir", str(tmp_path / "ft")])
    assert code == 0
    result = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert result["best"]["top1"] >= 60.0 and len(result["history"]) == 8
