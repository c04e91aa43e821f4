"""The last block's cls-to-patch attention: the fused kernel's own weights, outputs unchanged."""

from __future__ import annotations

import torch

from mae_core import create_model
from mae_core.attention import cls_attention


def test_maps_equal_the_blocks_explicit_softmax_and_leave_outputs_alone():
    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_patch16", img_size=32, patch_size=8, depth=3).eval()
    x = torch.randn(2, 3, 32, 32)
    masking = model.mask_indices(2, (4, 4), x.device, 0.5)
    before = model.forward_encoder(x, masking)
    maps = cls_attention(model, x, masking)
    assert torch.equal(model.forward_encoder(x, masking), before)
    # the reference: timm's non-fused path, which materialises softmax(q k^T * scale)
    block = model.blocks[-1]
    seen = {}
    tokens = model.encoder_tokens(x, masking)
    for b in model.blocks[:-1]:
        tokens = b(tokens)
    block.attn.fused_attn = False
    block.attn.attn_drop.register_forward_hook(lambda m, i, o: seen.update(w=o))
    with torch.no_grad():
        block(tokens)
    reference = seen["w"][:, :, 0, 1:]  # [N, H, K]
    assert maps.heads.shape == (2, model.config.num_heads, 4, 4) and maps.mean.shape == (2, 4, 4)
    for i in range(2):
        flat = maps.heads[i].flatten(1)  # [H, L]
        kept = masking.ids_keep[i]
        assert torch.allclose(flat[:, kept], reference[i], atol=1e-6)
        removed = masking.mask[i].bool()
        assert torch.isnan(flat[:, removed]).all() and not torch.isnan(flat[:, ~removed]).any()
    assert torch.allclose(maps.mean, maps.heads.mean(dim=1), equal_nan=True)
