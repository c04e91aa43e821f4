import numpy as np
import pytest
import torch

from mae_core import InvalidParameterError, create_model, get_preset, list_presets
from mae_core.masking import indices_from_scores
from mae_core.patches import patchify, unpatchify
from mae_core.pos_embed import sincos_2d


def test_patchify_round_trip_and_official_layout():
    p = 4
    imgs = torch.randn(2, 3, 8, 12)
    x = patchify(imgs, p)
    assert x.shape == (2, 6, p * p * 3)
    assert torch.equal(unpatchify(x, p, (2, 3)), imgs)
    # official layout: einsum('nchpwq->nhwpqc'): patch (h, w) row-major, vector ordered (p, q, c)
    n, hh, ww, pp, qq, c = 1, 1, 2, 3, 1, 2
    flat = x[n, hh * 3 + ww].reshape(p, p, 3)
    assert flat[pp, qq, c] == imgs[n, c, hh * p + pp, ww * p + qq]


def _official_sincos(dim, gh, gw):
    """The official construction, re-derived in numpy: meshgrid(grid_w, grid_h)."""
    def one_d(d, pos):
        omega = np.arange(d // 2, dtype=np.float64) / (d / 2.0)
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))
    grid = np.stack(grid, axis=0).reshape(2, 1, gh, gw)
    emb = np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)
    return np.concatenate([np.zeros([1, dim]), emb], axis=0)


@pytest.mark.parametrize("dim,gh,gw", [(64, 4, 4), (32, 3, 5), (768, 14, 14)])
def test_sincos_matches_official_construction(dim, gh, gw):
    ours = sincos_2d(dim, gh, gw).numpy()
    np.testing.assert_allclose(ours, _official_sincos(dim, gh, gw), atol=1e-6)
    # first half depends on the column only, second half on the row only
    body = ours[1:].reshape(gh, gw, dim)
    assert np.allclose(body[0, :, : dim // 2], body[-1, :, : dim // 2])
    assert np.allclose(body[:, 0, dim // 2:], body[:, -1, dim // 2:])
    assert np.all(ours[0] == 0)


def test_hand_computed_noise_mask():
    noise = torch.tensor([[0.3, 0.1, 0.9, 0.5]])
    m = indices_from_scores(noise, len_keep=2)
    assert m.ids_keep.tolist() == [[1, 0]]
    assert m.mask.tolist() == [[0, 0, 1, 1]]
    # ids_shuffle = [1, 0, 3, 2] -> ids_restore = argsort = [1, 0, 3, 2]
    assert m.ids_restore.tolist() == [[1, 0, 3, 2]]


def test_forward_contract(tiny_model):
    imgs = torch.randn(3, 3, 64, 64)
    out = tiny_model(imgs, mask_ratio=0.75)
    assert out.loss.ndim == 0
    assert out.pred.shape == (3, 16, 16 * 16 * 3)
    assert out.mask.shape == (3, 16) and out.ids_restore.shape == (3, 16)
    assert out.mask.sum(dim=1).tolist() == [12, 12, 12]  # int(16 * 0.25) = 4 kept
    loss, pred, mask, ids_restore = out  # unpacks like the official 3-tuple plus ids_restore


def test_model_same_noise_same_output_and_explicit_mask(tiny_model):
    imgs = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, 16)
    a, b = tiny_model(imgs, noise=noise), tiny_model(imgs, noise=noise)
    assert torch.equal(a.pred, b.pred)
    c = tiny_model(imgs, mask=a.mask)
    torch.testing.assert_close(c.pred, a.pred)
    assert torch.equal(c.mask, a.mask)


def test_loss_is_mse_on_masked_patches_only(tiny_model):
    imgs = torch.randn(2, 3, 64, 64)
    out = tiny_model(imgs, noise=torch.rand(2, 16))
    per_patch = ((out.pred - tiny_model.patchify(imgs)) ** 2).mean(-1)
    expected = (per_patch * out.mask).sum() / out.mask.sum()
    torch.testing.assert_close(out.loss, expected)
    from mae_core import MaskedAutoencoderViT

    all_model = MaskedAutoencoderViT(tiny_model.config.replace(loss_on="all"))
    all_model.load_state_dict(tiny_model.state_dict())
    out_all = all_model(imgs, noise=torch.rand(2, 16))
    per_patch = ((out_all.pred - all_model.patchify(imgs)) ** 2).mean(-1)
    torch.testing.assert_close(out_all.loss, per_patch.mean())


def test_norm_pix_target():
    model = create_model("mae_vit_tiny_patch16", img_size=64, norm_pix_loss=True)
    imgs = torch.randn(1, 3, 64, 64)
    t = model.target(imgs)
    raw = model.patchify(imgs)
    expected = (raw - raw.mean(-1, keepdim=True)) / (raw.var(-1, keepdim=True, unbiased=True) + 1e-6) ** 0.5
    torch.testing.assert_close(t, expected)


def test_encoder_sees_only_visible_patches(tiny_model):
    imgs = torch.randn(1, 3, 64, 64)
    noise = torch.rand(1, 16)
    masking = tiny_model.mask_indices(1, (4, 4), imgs.device, 0.75, noise)
    latent = tiny_model.forward_encoder(imgs, masking)
    assert latent.shape == (1, 1 + 4, 64)
    # changing the pixels of removed patches does not change the latent
    removed = masking.mask.reshape(4, 4).bool()
    pix = removed.repeat_interleave(16, 0).repeat_interleave(16, 1)
    changed = imgs.clone()
    changed[:, :, pix] = 99.0
    torch.testing.assert_close(tiny_model.forward_encoder(changed, masking), latent)


def test_encoder_mask_tokens_variant():
    model = create_model("mae_vit_tiny_patch16", img_size=64, encoder_mask_tokens=True)
    imgs = torch.randn(2, 3, 64, 64)
    masking = model.mask_indices(2, (4, 4), imgs.device, 0.75)
    assert model.forward_encoder(imgs, masking).shape == (2, 17, 192)
    out = model(imgs)
    assert out.pred.shape == (2, 16, 768) and torch.isfinite(out.loss)


def test_non_square_input():
    model = create_model("mae_vit_tiny_patch16", img_size=64)
    out = model(torch.randn(1, 3, 32, 80))  # 2 x 5 grid, not the configured 4 x 4
    assert out.pred.shape == (1, 10, 768)
    assert model.unpatchify(out.pred, (2, 5)).shape == (1, 3, 32, 80)


def test_init_follows_paper(tiny_model):
    sd = tiny_model.state_dict()
    assert not tiny_model.pos_embed.requires_grad and not tiny_model.decoder_pos_embed.requires_grad
    assert torch.all(sd["blocks.0.attn.qkv.bias"] == 0)
    assert torch.all(sd["norm.weight"] == 1)
    big = create_model("mae_vit_base_patch16")
    assert 0.015 < big.cls_token.std().item() < 0.025
    assert 0.015 < big.mask_token.std().item() < 0.025


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_builds_with_official_keys(name):
    config = get_preset(name, img_size=get_preset(name).patch_size * 4, depth=1, decoder_depth=1)
    model = create_model(name, img_size=config.img_size, depth=1, decoder_depth=1)
    keys = set(model.state_dict())
    assert {"cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight", "mask_token",
            "decoder_pos_embed", "decoder_embed.weight", "decoder_norm.weight",
            "decoder_pred.weight", "blocks.0.attn.qkv.weight", "blocks.0.mlp.fc2.bias",
            "decoder_blocks.0.norm1.weight"} <= keys
    assert model.pos_embed.shape == (1, 17, config.embed_dim)


def test_bad_config_is_a_clear_error():
    with pytest.raises(InvalidParameterError, match="multiple of patch_size"):
        create_model("mae_vit_tiny_patch16", img_size=70)
