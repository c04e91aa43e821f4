"""Exports load in their target libraries and compute our outputs: transformers'
ViTMAEForPreTraining, timm's VisionTransformer, and the official .pth layout."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from mae_core import create_model, load_model
from mae_core.checkpoint.export import export_model, timm_encoder_state
from mae_core.errors import CheckpointError, InvalidParameterError
from mae_core.masking import MaskIndices

TINY = dict(img_size=64, embed_dim=64, depth=2, num_heads=4, decoder_embed_dim=32,
            decoder_depth=1, decoder_num_heads=4)


@pytest.fixture
def trained_like():
    """A tiny model whose position tables and weights are all non-trivial."""
    torch.manual_seed(3)
    model = create_model("mae_vit_tiny_patch16", norm_pix_loss=True, **TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def test_huggingface_export_computes_our_outputs_for_the_same_noise(tmp_path, trained_like):
    transformers = pytest.importorskip("transformers")
    folder = export_model(trained_like, tmp_path / "hf", "hf")
    peer = transformers.ViTMAEForPreTraining.from_pretrained(folder).eval()
    imgs = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = trained_like(imgs, noise=noise)
        theirs = peer(pixel_values=imgs, noise=noise)
    assert torch.equal(theirs.mask, ours.mask)
    torch.testing.assert_close(theirs.logits, ours.pred, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(theirs.loss, ours.loss, rtol=1e-4, atol=1e-6)
    assert peer.config.norm_pix_loss is True


def test_timm_export_loads_with_strict_keys_and_gives_identical_features(tmp_path, trained_like):
    timm = pytest.importorskip("timm")
    path = export_model(trained_like, tmp_path / "encoder.safetensors", "timm")
    arch = dict(embed_dim=64, depth=2, num_heads=4, img_size=64, num_classes=0)
    strict = timm.create_model("vit_tiny_patch16_224", pretrained=False, **arch).eval()
    strict.load_state_dict(load_file(path), strict=True)  # every key, no extras
    via_cfg = timm.create_model("vit_tiny_patch16_224", pretrained=True, **arch,
                                pretrained_cfg_overlay=dict(file=str(path))).eval()
    imgs = torch.randn(2, 3, 64, 64)
    keep_all = torch.arange(16).expand(2, -1)
    with torch.no_grad():
        ours = trained_like.forward_encoder(imgs, MaskIndices(keep_all, keep_all, torch.zeros(2, 16)))
        for peer in (strict, via_cfg):
            torch.testing.assert_close(peer.forward_features(imgs), ours, rtol=1e-4, atol=1e-5)


def test_official_export_is_the_official_pth_layout_and_loads_back(tmp_path, trained_like):
    path = export_model(trained_like, tmp_path / "mae_visualize_tiny.pth", "official")
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"model"}
    assert set(saved["model"]) == set(trained_like.state_dict())
    back = load_model(path, config=trained_like.config).eval()
    imgs = torch.randn(1, 3, 64, 64)
    noise = torch.rand(1, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(back(imgs, noise=noise).pred, trained_like(imgs, noise=noise).pred)


def test_encoder_only_models_export_to_timm_and_official_but_not_hf(tmp_path):
    model = create_model("mae_vit_tiny_patch16", has_decoder=False, **TINY)
    with pytest.raises(CheckpointError, match="--to timm"):
        export_model(model, tmp_path / "hf", "hf")
    saved = torch.load(export_model(model, tmp_path / "enc.pth", "official"), weights_only=True)
    assert set(saved["model"]) == set(timm_encoder_state(model))
    assert not any(k.startswith(("decoder", "mask_token")) for k in saved["model"])
    with pytest.raises(InvalidParameterError, match="hf, timm, official"):
        export_model(model, tmp_path / "x", "onnx")


def test_mae_checkpoints_export_writes_each_target(tmp_path, trained_like):
    from mae_cli import main
    from mae_core import save_model

    src = save_model(trained_like, tmp_path / "mine.safetensors", {"training": {"note": "test"}})
    assert main(["checkpoints", "export", str(src), str(tmp_path / "hf"), "--to", "hf"]) == 0
    assert {p.name for p in (tmp_path / "hf").iterdir()} == {"config.json", "model.safetensors"}
    assert main(["checkpoints", "export", str(src), str(tmp_path / "t.safetensors"), "--to", "timm"]) == 0
    assert set(load_file(tmp_path / "t.safetensors")) == set(timm_encoder_state(trained_like))
