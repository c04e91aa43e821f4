"""``mae train --init-from``: the run takes the checkpoint's architecture and the
continued-pretraining lr, as a job does (mae_core.train.init); flags the user gives win, and an
architecture that differs from the checkpoint's is refused before anything trains."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mae_cli import build_parser, main
from mae_cli.train import resolve_config
from mae_core.errors import InvalidParameterError
from mae_core.train.config import RECIPES
from mae_core.train.init import CONTINUE_LR
from mae_tools.testing import TINY_64, write_checkpoint
from support.train_helpers import make_images


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """A small checkpoint (TINY_64: 64 px, 64-d encoder, 32-d decoder) and 8 images."""
    root = tmp_path_factory.mktemp("init-from")
    return write_checkpoint(root, "start"), make_images(root / "images", count=8, size=64)


def resolved(start, *flags: str):
    weights, images = start
    args = build_parser().parse_args(["train", "--init-from", str(weights), "--data", str(images),
                                      "--recipe", "cpu-demo", *flags])
    return resolve_config(args)


def test_no_architecture_flags_train_the_checkpoints_architecture(start, tmp_path, capsys):
    weights, images = start
    out = tmp_path / "run"
    rc = main(["train", "--init-from", str(weights), "--data", str(images), "--recipe", "cpu-demo",
               "--batch-size", "4", "--max-steps", "2", "--device", "cpu", "--output-dir", str(out),
               "--snapshot-every", "0", "--no-progress"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
    config = json.loads((out / "config.json").read_text())
    arch = {k: v for k, v in TINY_64.items() if k != "img_size"}
    assert {k: config["model_overrides"][k] for k in arch} == arch
    assert config["data"]["img_size"] == TINY_64["img_size"]  # the checkpoint's, not the recipe's 224
    assert config["optim"]["lr"] == CONTINUE_LR != RECIPES["cpu-demo"].optim.lr
    # the run's weights are the checkpoint's, moved by two small steps
    saved = torch.load(sorted((out / "checkpoints").glob("*.pt"))[-1], weights_only=True)["model"]
    first = load_file(str(weights))
    key = "blocks.0.attn.qkv.weight"
    assert 0 < (saved[key] - first[key]).abs().max() < 1e-2


@pytest.mark.parametrize("flags, words", [
    (["--decoder-depth", "2"], ["decoder_depth=1 (asked: 2)", "--model and the architecture flags"]),
    (["--model", "mae_vit_small_patch16"], ["embed_dim=64 (asked: 384)", "depth=2 (asked: 12)"]),
    (["--num-heads", "2"], ["num_heads=4 (asked: 2)"]),  # heads leave no trace in the shapes
])
def test_flags_that_disagree_with_the_checkpoint_are_refused(start, flags, words):
    with pytest.raises(InvalidParameterError) as info:
        resolved(start, *flags)
    for word in ["--init-from start.safetensors has", *words]:
        assert word in str(info.value)


def test_flags_the_user_gives_win(start):
    config = resolved(start, "--img-size", "32", "--decoder-depth", "1", "--lr", "3e-4")
    assert config.data.img_size == 32 and config.model_overrides["decoder_depth"] == 1
    assert config.optim.lr == 3e-4


def test_the_continue_lr_applies_only_without_lr_or_blr(start, tmp_path):
    assert resolved(start).optim.lr == CONTINUE_LR
    assert resolved(start, "--lr", "2e-4").optim.lr == 2e-4
    blr = resolved(start, "--blr", "1e-3").optim
    assert blr.blr == 1e-3 and blr.lr is None  # lr = blr * batch / 256, not the recipe's lr
    (tmp_path / "c.json").write_text(json.dumps({"optim": {"lr": 7e-4}}))
    assert resolved(start, "--config", str(tmp_path / "c.json")).optim.lr == 7e-4
    # without --init-from the recipe's from-scratch lr stays
    _, images = start
    scratch = resolve_config(build_parser().parse_args(["train", "--data", str(images)]))
    assert scratch.optim.lr == RECIPES["cpu-demo"].optim.lr and scratch.data.img_size == 224
