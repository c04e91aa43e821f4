"""Head counts leave no trace in tensor shapes: a training checkpoint is read back with the heads
its run config names, and ``--init-from`` refuses a model whose heads differ from the card's."""

from __future__ import annotations

import json

import pytest
import torch

import mae_core
from mae_core.checkpoint.io import load_model
from mae_core.config import ModelConfig
from mae_core.errors import TrainingError
from mae_core.model import MaskedAutoencoderViT
from mae_core.train.init import init_from_checkpoint
from mae_tools.testing import write_checkpoint


def test_a_training_checkpoint_is_loaded_with_its_run_configs_heads(tmp_path):
    overrides = {"decoder_num_heads": 2, "num_heads": 1}
    model = mae_core.create_model("mae_vit_tiny_patch16", img_size=64, **overrides)
    run_config = {"model": "mae_vit_tiny_patch16", "model_overrides": overrides,
                  "data": {"img_size": 64}, "norm_pix_loss": False}
    path = tmp_path / "ckpt_00000001.pt"
    torch.save({"model": model.state_dict(), "step": 1, "config": json.dumps(run_config)}, path)
    loaded = load_model(path).eval()
    assert (loaded.config.num_heads, loaded.config.decoder_num_heads) == (1, 2)
    x, noise = torch.rand(1, 3, 64, 64), torch.rand(1, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x, mask_ratio=0.75, noise=noise)[1], model.eval()(x, mask_ratio=0.75, noise=noise)[1])
    # the folder listing describes the same architecture as the loader builds
    from mae_core.checkpoint.io import checkpoint_config, list_checkpoints

    listed = {i.id: i.card["model_config"] for i in list_checkpoints(tmp_path)}
    assert listed["ckpt_00000001"] == checkpoint_config(path).to_dict() == loaded.config.to_dict()


def test_init_from_refuses_other_head_counts(tmp_path):
    weights = write_checkpoint(tmp_path, "tiny")
    config = ModelConfig.from_dict(json.loads(weights.with_suffix(".json").read_text())["model_config"])
    other = MaskedAutoencoderViT(config.replace(decoder_num_heads=config.decoder_num_heads * 2))
    with pytest.raises(TrainingError, match=f"decoder_num_heads \\({config.decoder_num_heads} in the checkpoint"):
        init_from_checkpoint(other, weights)
    init_from_checkpoint(MaskedAutoencoderViT(config), weights)  # the card's own heads load


def test_a_card_less_official_file_gives_its_architecture_to_a_run_from_it(tmp_path):
    from mae_core import create_model
    from mae_core.checkpoint.export import export_official
    from mae_core.presets import get_preset
    from mae_core.train.config import RECIPES
    from mae_core.train.init import checkpoint_architecture, start_architecture

    # heads as the loader infers them without a card (64-d encoder heads, 32-d decoder heads)
    arch = dict(embed_dim=128, depth=2, num_heads=2, decoder_embed_dim=64, decoder_depth=1,
                decoder_num_heads=2, patch_size=8)
    torch.manual_seed(3)
    official = export_official(create_model("mae_vit_tiny_patch16", img_size=64, **arch),
                               tmp_path / "official.pth")
    assert not official.with_suffix(".json").exists()
    assert checkpoint_architecture(official) == {**arch, "img_size": 64}
    start = start_architecture(official, RECIPES["cpu-demo"])
    assert start.img_size == 64 and {k: start.overrides[k] for k in arch} == arch
    model = MaskedAutoencoderViT(get_preset(start.model, img_size=start.img_size, **start.overrides))
    init_from_checkpoint(model, official)  # every tensor fits
    assert checkpoint_architecture(tmp_path / "missing.pth") == {}
