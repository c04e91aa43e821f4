"""The last encoder block's cls-to-patch attention, per head, over the visible patches.

timm's blocks use fused attention (``scaled_dot_product_attention``), which never materialises
the attention matrix. ``cls_attention`` therefore runs the encoder up to the last block as
usual and recomputes that block's softmax(q k^T / sqrt(d)) from its own ``qkv`` projection
(and q/k norms): the model's outputs are untouched, and the maps are exactly the weights the
fused kernel applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .blocks import run_blocks
from .masking import MaskIndices
from .model import MaskedAutoencoderViT


@dataclass(frozen=True)
class AttentionMaps:
    """``heads`` [N, H, h, w] and ``mean`` [N, h, w]: the cls token's attention to each patch
    (removed patches are NaN: the encoder never saw them). The weights over the visible
    patches and the cls token itself sum to 1 per head."""

    heads: torch.Tensor
    mean: torch.Tensor


@torch.no_grad()
def cls_attention(model: MaskedAutoencoderViT, imgs: torch.Tensor, masking: MaskIndices) -> AttentionMaps:
    """The last block's cls-to-patch attention of ``imgs`` [N, 3, H, W] under ``masking``."""
    grid = model.grid_of(imgs)
    x = model.encoder_tokens(imgs, masking)
    x = run_blocks(model.blocks[:-1], x, model._plain_encoder)
    block: Any = model.blocks[-1]  # untyped: nn.Module.__getattr__ types attributes Tensor | Module
    attn = block.attn
    batch, tokens, _ = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(batch, tokens, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    weights = ((q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)).float().softmax(dim=-1)  # [N, H, 1, T]
    cls_row = weights[:, :, 0, 1:]  # [N, H, K] (or [N, H, L] with encoder mask tokens)
    length = grid[0] * grid[1]
    full = torch.full((batch, attn.num_heads, length), float("nan"), device=x.device)
    if cls_row.shape[-1] == length:  # encoder_mask_tokens: every position is a token
        full = cls_row.clone()
        full[masking.mask.bool()[:, None, :].expand_as(full)] = float("nan")
    else:
        full.scatter_(2, masking.ids_keep[:, None, :].expand(-1, attn.num_heads, -1), cls_row)
    heads = full.reshape(batch, attn.num_heads, *grid)
    return AttentionMaps(heads=heads.cpu(), mean=heads.mean(dim=1).cpu())


def reconstruction_attention(reconstructor: Any, prepared: Any, mask: Any) -> AttentionMaps:
    """The maps for one image a ``Reconstructor`` reconstructed: ``prepared`` its
    ``PreparedImage``, ``mask`` the grid mask it used (1 = removed), so the maps are over exactly
    the patches the reconstruction saw. Runs in float32, under the reconstructor's lock."""
    from .masking import indices_from_mask

    model = reconstructor.model
    x = prepared.tensor[None].to(reconstructor.device)
    flat = torch.as_tensor(mask).reshape(1, -1).to(reconstructor.device)
    with reconstructor._lock, torch.inference_mode():
        return cls_attention(model, x, indices_from_mask(flat))
