"""The speed work keeps the math: lean blocks, visible-only patch embedding, prepared inputs,
precision policies, and the serving process settings."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import Block

from mae_core import InvalidParameterError, PreparedImage, Reconstructor, create_model
from mae_core import blocks as lean
from mae_core.imaging import IMAGENET_MEAN, IMAGENET_STD, fit_image, to_tensor
from mae_core.patches import embedding_patches
from mae_core.precision import autocast_dtype, cpu_has_native_bf16


def _twin_blocks(**kwargs):
    torch.manual_seed(0)
    a = Block(32, 4, mlp_ratio=4.0, qkv_bias=True, **kwargs)
    b = Block(32, 4, mlp_ratio=4.0, qkv_bias=True, **kwargs)
    b.load_state_dict(a.state_dict())
    return a, b


def test_lean_block_is_bit_identical_to_timm_in_eval_and_grads_match_in_training():
    module, functional = _twin_blocks()
    assert lean.is_plain(functional)
    x = torch.randn(3, 17, 32)
    module.eval()
    with torch.no_grad():
        assert torch.equal(lean.plain_block_forward(module, x), module(x))
    module.train(), functional.train()  # zero rates: dropout and drop-path are idle
    assert lean.stochastic_layers_idle(functional)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    module(xa).square().sum().backward()
    lean.run_blocks(torch.nn.ModuleList([functional]), xb, plain=True).square().sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad)
    for (name, pa), pb in zip(module.named_parameters(), functional.parameters()):
        torch.testing.assert_close(pb.grad, pa.grad, msg=name)


def test_blocks_with_extras_or_live_drop_path_use_the_module(monkeypatch):
    scaled, _ = _twin_blocks(init_values=1e-5)  # layer scale: not plain
    assert not lean.is_plain(scaled)
    dropping, _ = _twin_blocks(drop_path=0.5)
    assert lean.is_plain(dropping)
    dropping.train()
    assert not lean.stochastic_layers_idle(dropping)
    dropping.eval()
    assert lean.stochastic_layers_idle(dropping)

    def refuse(block, x):
        raise AssertionError("the lean path ran where the module must")

    monkeypatch.setattr(lean, "plain_block_forward", refuse)
    dropping.train()
    lean.run_blocks(torch.nn.ModuleList([dropping]), torch.randn(2, 5, 32), plain=True)
    lean.run_blocks(torch.nn.ModuleList([scaled]), torch.randn(2, 5, 32), plain=False)


def test_model_with_drop_path_trains_through_the_module():
    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_patch16", img_size=32, depth=2, decoder_depth=1,
                         drop_path_rate=0.5).train()
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 4)
    torch.manual_seed(1)
    a = model(imgs, noise=noise).pred
    torch.manual_seed(2)
    b = model(imgs, noise=noise).pred
    assert not torch.equal(a, b)  # drop-path really is live


def test_visible_patch_embedding_equals_the_convolution(tiny_model):
    imgs = torch.randn(2, 3, 64, 64)
    ids = torch.tensor([[0, 5, 9, 15], [3, 4, 10, 12]])
    with torch.no_grad():
        conv = tiny_model.patch_embed(imgs)  # [N, L, D]
        expected = torch.gather(conv, 1, ids.unsqueeze(-1).expand(-1, -1, conv.shape[-1]))
        got = tiny_model._embed_visible(imgs, ids)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    patches = embedding_patches(imgs, 16)
    assert patches.shape == (2, 16, 3 * 16 * 16)
    # patch (row 1, col 2) in (c, p, q) order
    assert torch.equal(patches[0, 1 * 4 + 2], imgs[0, :, 16:32, 32:48].reshape(-1))


def test_to_tensor_is_the_plain_formula_bit_for_bit(photo):
    pixels = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255.0).permute(2, 0, 1)
    expected = (pixels - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    got = to_tensor(photo)
    assert got.is_contiguous() and got.dtype == torch.float32
    assert torch.equal(got, expected)


@pytest.mark.parametrize("policy", ["crop", "keep-aspect"])
def test_fitting_a_fitted_image_returns_it_unchanged(photo, policy):
    fitted = fit_image(photo, (64, 64), 16, policy)
    assert fit_image(fitted, (64, 64), 16, policy) is fitted


def test_prepared_input_gives_the_same_reconstruction(tiny_model, photo):
    r = Reconstructor(tiny_model, device="cpu", precision="fp32")
    prepared = r.prepare_input(photo)
    assert isinstance(prepared, PreparedImage) and prepared.tensor.shape == (3, 64, 64)
    assert r.prepare_input(prepared) is prepared
    a, b = r.reconstruct(photo, seed=3), r.reconstruct(prepared, seed=3)
    assert np.array_equal(a.reconstruction, b.reconstruction) and np.array_equal(a.mask, b.mask)
    # a prepared image that does not fit this model is fitted again
    other = Reconstructor(create_model("mae_vit_tiny_patch16", img_size=32, embed_dim=64, depth=1,
                                       num_heads=4, decoder_embed_dim=32, decoder_depth=1,
                                       decoder_num_heads=4), device="cpu")
    assert other.reconstruct(prepared, seed=3).original.shape == (32, 32, 3)


def test_precision_policies():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype("fp32", cuda) is None and autocast_dtype("auto", cuda) is torch.bfloat16
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("fast", cpu) is (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert autocast_dtype("fast", torch.device("mps")) is None
    with pytest.raises(InvalidParameterError, match="fp32"):
        autocast_dtype("half", cpu)


def test_bf16_reconstruction_is_close_to_fp32(tiny_model, photo):
    exact = Reconstructor(tiny_model, device="cpu", precision="fp32")
    fast = Reconstructor(tiny_model, device="cpu", precision="bf16")
    assert (exact.compute_dtype, fast.compute_dtype) == ("fp32", "bf16")
    a, b = exact.reconstruct(photo, seed=4), fast.reconstruct(photo, seed=4)
    assert np.array_equal(a.mask, b.mask)
    diff = np.abs(a.reconstruction.astype(int) - b.reconstruction)
    assert diff.mean() < 1.0 and diff.max() <= 16
    with pytest.raises(InvalidParameterError, match="precision"):
        Reconstructor(tiny_model, device="cpu", precision="int8")


def _python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_openmp_spin_is_shortened_unless_set():
    code = "import mae_core, os; print(os.environ['GOMP_SPINCOUNT'])"
    assert _python(code) == "10000"
    assert _python(code, GOMP_SPINCOUNT="300000") == "300000"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_server_shares_one_malloc_arena():
    assert _python("from app.server import share_one_malloc_arena as f; print(f())") == "True"
