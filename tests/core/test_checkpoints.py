import argparse
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from mae_core import (
    CheckpointError, DecoderMissingError, Reconstructor, UnsafeCheckpointError, list_checkpoints,
    load_model, save_model,
)
from mae_core.checkpoint.formats import to_huggingface


def _official_file(tmp_path, model, **extra):
    path = tmp_path / "official.pth"
    torch.save({"model": model.state_dict(), **extra}, path)
    return path


def test_official_pth_with_args_loads_strictly_without_unsafe_unpickling(tmp_path, tiny_model):
    args = argparse.Namespace(model="mae_vit_tiny_patch16", norm_pix_loss=False, input_size=64)
    path = _official_file(tmp_path, tiny_model, args=args, epoch=799, optimizer={"state": {}})
    loaded = load_model(path, config=tiny_model.config)
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert loaded.source_layout == "official"


def test_architecture_is_inferred_from_shapes(tmp_path):
    from mae_core import create_model

    model = create_model("mae_vit_base_patch16", img_size=64, depth=2, decoder_depth=2)
    path = _official_file(tmp_path, model)
    loaded = load_model(path)
    c = loaded.config
    assert (c.embed_dim, c.depth, c.num_heads, c.patch_size, c.img_size) == (768, 2, 12, 16, (64, 64))
    assert (c.decoder_embed_dim, c.decoder_depth, c.decoder_num_heads) == (512, 2, 16)


def test_official_and_huggingface_layouts_give_identical_outputs(tmp_path, tiny_model):
    official = _official_file(tmp_path, tiny_model)
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    save_file({k: v.contiguous() for k, v in to_huggingface(tiny_model.state_dict()).items()},
              str(hf_dir / "model.safetensors"))
    a = load_model(official, config=tiny_model.config)
    b = load_model(hf_dir / "model.safetensors", config=tiny_model.config)
    imgs, noise = torch.randn(2, 3, 64, 64), torch.rand(2, 16)
    with torch.no_grad():
        oa, ob = a(imgs, noise=noise), b(imgs, noise=noise)
    assert torch.equal(oa.pred, ob.pred) and torch.equal(oa.mask, ob.mask)


def test_real_transformers_model_loads_and_matches(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTMAEConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
        image_size=64, patch_size=16, decoder_hidden_size=32, decoder_num_hidden_layers=2,
        decoder_num_attention_heads=4, decoder_intermediate_size=128, mask_ratio=0.75,
    )
    torch.manual_seed(0)
    hf = transformers.ViTMAEForPreTraining(cfg).eval()
    hf.save_pretrained(tmp_path)  # model.safetensors + config.json, Hub layout
    ours = load_model(tmp_path / "model.safetensors")
    assert ours.config.norm_eps == cfg.layer_norm_eps and ours.config.num_heads == 4
    imgs, noise = torch.randn(2, 3, 64, 64), torch.rand(2, 16)
    with torch.no_grad():
        theirs = hf(pixel_values=imgs, noise=noise)
        mine = ours(imgs, noise=noise)
    torch.testing.assert_close(mine.pred, theirs.logits, atol=1e-4, rtol=1e-4)
    assert torch.equal(mine.mask, theirs.mask)
    torch.testing.assert_close(mine.loss, theirs.loss, atol=1e-5, rtol=1e-5)
    # the in-memory transformers 5.x names load too
    mem = tmp_path / "mem.safetensors"
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, str(mem))
    again = load_model(mem, config=ours.config)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in ours.state_dict().items())


def test_pickled_callable_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pth"
    code = (
        "import torch, pathlib\n"
        "class Evil:\n"
        f"    def __reduce__(self): return (pathlib.Path.touch, (pathlib.Path({str(marker)!r}),))\n"
        f"torch.save({{'model': {{'w': torch.zeros(1)}}, 'x': Evil()}}, {str(evil)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    env_before = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with pytest.raises(UnsafeCheckpointError, match="refused"):
            load_model(evil)
    finally:
        if env_before is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = env_before
    assert not marker.exists()


def test_encoder_only_loads_but_refuses_to_reconstruct(tmp_path, tiny_model):
    encoder = {k: v for k, v in tiny_model.state_dict().items()
               if not k.startswith(("decoder_", "mask_token"))}
    path = tmp_path / "encoder.pth"
    torch.save({"model": encoder}, path)
    model = load_model(path, config=tiny_model.config)
    assert not model.has_decoder
    torch.testing.assert_close(model.forward_features(torch.randn(1, 3, 64, 64)).shape[-1], 64)
    with pytest.raises(DecoderMissingError, match="decoder"):
        Reconstructor(model)
    # also a timm-style plain safetensors encoder state dict
    st = tmp_path / "timm_encoder.safetensors"
    save_file({k: v.contiguous() for k, v in encoder.items()}, str(st))
    assert not load_model(st, config=tiny_model.config).has_decoder


def test_own_format_round_trip_and_card(tmp_path, tiny_model):
    path = save_model(tiny_model, tmp_path / "mine", {"training": {"steps": 5}}, dtype=torch.float16)
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    loaded = load_model(path)  # config from the card alone
    assert loaded.config == tiny_model.config
    assert loaded.card["training"] == {"steps": 5} and loaded.card["dtype"] == "float16"
    torch.testing.assert_close(loaded.state_dict()["cls_token"], tiny_model.cls_token.data,
                               atol=1e-3, rtol=1e-3)


def test_broken_files_are_listed_with_reasons(tmp_path, tiny_model):
    good = save_model(tiny_model, tmp_path / "good.safetensors")
    (tmp_path / "truncated.safetensors").write_bytes(good.read_bytes()[:100])
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    infos = {i.id: i for i in list_checkpoints(tmp_path)}
    assert infos["good"].error is None and infos["good"].can_reconstruct
    assert infos["truncated"].error and infos["garbage"].error
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "garbage.pth")


def test_wrong_shapes_are_a_clear_error(tmp_path, tiny_model):
    state = tiny_model.state_dict()
    state["blocks.0.attn.qkv.weight"] = torch.zeros(5, 5)
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="shape"):
        load_model(tmp_path / "bad.pth", config=tiny_model.config)
