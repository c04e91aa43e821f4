"""The Masked Autoencoder ViT, stage by stage as in the paper (He et al. 2021).

State-dict key names equal the official facebookresearch/mae ``MaskedAutoencoderViT`` so released
checkpoints load with ``strict=True``. Building blocks are current timm layers (fused SDPA
attention). The encoder runs on the visible patches only; the light decoder sees every position.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn

from .blocks import is_plain, run_blocks
from .config import ModelConfig
from .masking import MaskIndices, indices_from_mask, indices_from_scores, num_kept
from .patches import embedding_patches, patchify, unpatchify
from .pos_embed import sincos_2d


class MAEOutput(NamedTuple):
    """What ``MaskedAutoencoderViT.forward`` returns."""

    loss: torch.Tensor  # scalar
    pred: torch.Tensor  # [N, L, p*p*3] predicted patches (normalised if norm_pix_loss)
    mask: torch.Tensor  # [N, L] 0 = visible, 1 = removed
    ids_restore: torch.Tensor  # [N, L]


class MaskedAutoencoderViT(nn.Module):
    """Masked Autoencoder with a ViT encoder and a lightweight ViT decoder.

    Args:
        config: the architecture; see ``ModelConfig``. ``mae_core.create_model(name)`` builds a
            registered preset.

    Call contract: ``model(imgs, mask_ratio=0.75, noise=None, mask=None)`` with ``imgs``
    ``[N, 3, H, W]`` normalised with ImageNet mean/std. ``noise`` [N, L] has the official meaning
    (the smallest scores are kept); ``mask`` [N, L] is an explicit 0/1 mask (1 = removed) with the
    same count per sample and overrides ``mask_ratio`` and ``noise``.
    """

    def __init__(self, config: ModelConfig, *, has_decoder: bool = True) -> None:
        super().__init__()
        self.config = config
        # False for encoder-only weights: the decoder is built (so the state dict has its keys)
        # but stays randomly initialised, and reconstruction refuses.
        self._decoder_trained = has_decoder
        c = config
        norm_layer = partial(nn.LayerNorm, eps=c.norm_eps)

        # --- encoder ---
        # strict_img_size=False: any input whose sides are multiples of the patch size works.
        self.patch_embed = PatchEmbed(
            img_size=c.img_size, patch_size=c.patch_size, in_chans=c.in_chans,
            embed_dim=c.embed_dim, strict_img_size=False,
        )
        length = c.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, length + 1, c.embed_dim), requires_grad=False)
        if c.encoder_mask_tokens:
            self.encoder_mask_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        drop_rates = torch.linspace(0, c.drop_path_rate, c.depth, device="cpu").tolist()
        self.blocks = nn.ModuleList(
            Block(c.embed_dim, c.num_heads, mlp_ratio=c.mlp_ratio, qkv_bias=True,
                  norm_layer=norm_layer, drop_path=rate)  # type: ignore[arg-type]  # any callable
            for rate in drop_rates
        )
        self.norm = norm_layer(c.embed_dim)

        # --- decoder ---
        self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, length + 1, c.decoder_embed_dim), requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            Block(
                c.decoder_embed_dim, c.decoder_num_heads, mlp_ratio=c.mlp_ratio, qkv_bias=True,
                norm_layer=norm_layer,  # type: ignore[arg-type]  # timm accepts any callable
            )
            for _ in range(c.decoder_depth)
        )
        self.decoder_norm = norm_layer(c.decoder_embed_dim)
        self.decoder_pred = nn.Linear(
            c.decoder_embed_dim, c.patch_size**2 * c.in_chans, bias=True
        )
        self._pos_cache: dict[tuple[int, int, int, str], torch.Tensor] = {}
        # Checked once: plain blocks run through the lean functional forward (mae_core.blocks).
        self._plain_encoder = all(is_plain(b) for b in self.blocks)
        self._plain_decoder = all(is_plain(b) for b in self.decoder_blocks)
        self.initialize_weights()

    # ------------------------------------------------------------------ init
    def initialize_weights(self) -> None:
        """Paper/official init: fixed sin-cos tables, xavier_uniform linears, N(0, .02) tokens."""
        gh, gw = self.config.grid_size
        self.pos_embed.data.copy_(sincos_2d(self.config.embed_dim, gh, gw)[None])
        self.decoder_pos_embed.data.copy_(sincos_2d(self.config.decoder_embed_dim, gh, gw)[None])
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # the conv seen as a Linear
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        if self.config.encoder_mask_tokens:
            nn.init.normal_(self.encoder_mask_token, std=0.02)
        self.apply(_init_module)

    # --------------------------------------------------------------- helpers
    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    @property
    def has_decoder(self) -> bool:
        """False for encoder-only weights (official pretrain files, timm encoders)."""
        return self._decoder_trained

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] → [N, L, p*p*3] in the official (p, q, c) layout."""
        return patchify(imgs, self.patch_size)

    def unpatchify(self, x: torch.Tensor, grid_size: tuple[int, int] | None = None) -> torch.Tensor:
        """[N, L, p*p*3] → [N, 3, H, W]; ``grid_size`` defaults to the configured grid."""
        return unpatchify(x, self.patch_size, grid_size or self.config.grid_size)

    def grid_of(self, imgs: torch.Tensor) -> tuple[int, int]:
        return (imgs.shape[-2] // self.patch_size, imgs.shape[-1] // self.patch_size)

    def _pos_table(self, which: str, grid: tuple[int, int]) -> torch.Tensor:
        """[1, 1+L, D] position table for ``grid``; the stored one for the configured grid."""
        stored = self.pos_embed if which == "encoder" else self.decoder_pos_embed
        if grid == self.config.grid_size:
            return stored
        key = (grid[0], grid[1], stored.shape[-1], str(stored.device))
        if key not in self._pos_cache:
            table = sincos_2d(stored.shape[-1], *grid)[None]
            self._pos_cache[key] = table.to(device=stored.device, dtype=stored.dtype)
        return self._pos_cache[key]

    def mask_indices(
        self,
        batch: int,
        grid: tuple[int, int],
        device: torch.device,
        mask_ratio: float = 0.75,
        noise: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> MaskIndices:
        """Resolve (mask | noise | random) into keep/restore indices for a batch."""
        length = grid[0] * grid[1]
        if mask is not None:
            return indices_from_mask(mask.to(device).reshape(batch, length))
        if noise is None:
            noise = torch.rand(batch, length, device=device)  # official: U[0, 1)
        return indices_from_scores(noise.to(device).reshape(batch, length), num_kept(length, mask_ratio))

    # ---------------------------------------------------------------- stages
    def forward_encoder(
        self, imgs: torch.Tensor, masking: MaskIndices
    ) -> torch.Tensor:
        """Encode the visible patches. Returns latent [N, 1+K, D] (or [N, 1+L, D] with
        ``encoder_mask_tokens``, where removed patches are replaced by a learned token)."""
        x = run_blocks(self.blocks, self.encoder_tokens(imgs, masking), self._plain_encoder)
        return self.norm(x)

    def encoder_tokens(self, imgs: torch.Tensor, masking: MaskIndices) -> torch.Tensor:
        """The encoder's input before its first block: cls + embedded visible patches, with
        position embeddings, [N, 1+K, D] (the attention maps start their own pass here)."""
        grid = self.grid_of(imgs)
        pos = self._pos_table("encoder", grid)
        if self.config.encoder_mask_tokens:
            x = self.patch_embed(imgs)  # [N, L, D]
            m = masking.mask.unsqueeze(-1).to(x.dtype)  # [N, L, 1]
            x = x * (1 - m) + self.encoder_mask_token.to(x.dtype) * m
            x = x + pos[:, 1:, :]
        else:
            x = self._embed_visible(imgs, masking.ids_keep) + _gather_tokens(pos[:, 1:, :], masking.ids_keep)
        cls = (self.cls_token + pos[:, :1, :]).expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1)  # [N, 1+K, D]

    def forward_decoder(
        self, latent: torch.Tensor, masking: MaskIndices, grid: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Predict every patch from the latent. Returns [N, L, p*p*3] (cls position dropped)."""
        if not self.has_decoder:
            from .errors import DecoderMissingError

            raise DecoderMissingError(
                "this model was loaded from encoder-only weights (no decoder_* tensors), so it "
                "cannot reconstruct; use a checkpoint with a decoder, e.g. the official "
                "'visualize' files or one trained with `mae train`"
            )
        grid = grid or self.config.grid_size
        length = grid[0] * grid[1]
        x = self.decoder_embed(latent)  # [N, 1+K, Dd]
        if not self.config.encoder_mask_tokens:
            n, k1, dd = x.shape
            mask_tokens = self.mask_token.to(x.dtype).expand(n, length + 1 - k1, -1)
            body = torch.cat([x[:, 1:, :], mask_tokens], dim=1)  # [N, L, Dd] shuffled order
            body = _gather_tokens(body, masking.ids_restore)  # [N, L, Dd] patch order
            x = torch.cat([x[:, :1, :], body], dim=1)  # [N, 1+L, Dd]
        x = x + self._pos_table("decoder", grid)
        x = run_blocks(self.decoder_blocks, x, self._plain_decoder)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)  # [N, 1+L, p*p*3]
        return x[:, 1:, :]

    def _embed_visible(self, imgs: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Patch embedding of the kept patches only, [N, K, D]: the stride-p convolution written
        as a linear layer on the gathered patches, so removed patches cost nothing."""
        proj = self.patch_embed.proj
        patches = _gather_tokens(embedding_patches(imgs, self.patch_size), ids_keep)
        x = F.linear(patches, proj.weight.flatten(1), proj.bias)
        return self.patch_embed.norm(x)

    def target(self, imgs: torch.Tensor) -> torch.Tensor:
        """Regression target [N, L, p*p*3]: pixels, per-patch normalised with norm_pix_loss."""
        target = self.patchify(imgs)
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)  # unbiased, as the official code
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        return target

    def forward_loss(
        self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Mean per-patch MSE over removed patches (or over all with ``loss_on='all'``)."""
        # mse_loss(reduction="none") is the squared difference in one kernel (half the time of ** 2)
        per_patch = F.mse_loss(pred.float(), self.target(imgs).float(), reduction="none").mean(dim=-1)  # [N, L]
        if self.config.loss_on == "all":
            return per_patch.mean()
        return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)

    def forward(
        self,
        imgs: torch.Tensor,
        mask_ratio: float = 0.75,
        noise: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> MAEOutput:
        grid = self.grid_of(imgs)
        masking = self.mask_indices(imgs.shape[0], grid, imgs.device, mask_ratio, noise, mask)
        latent = self.forward_encoder(imgs, masking)
        pred = self.forward_decoder(latent, masking, grid)
        loss = self.forward_loss(imgs, pred, masking.mask)
        return MAEOutput(loss, pred, masking.mask, masking.ids_restore)

    # ---------------------------------------------------------------- encoder use
    def forward_features(self, imgs: torch.Tensor, pool: str = "cls") -> torch.Tensor:
        """Unmasked encoder features [N, D] for probing/fine-tuning (cls token or mean pool)."""
        grid = self.grid_of(imgs)
        length = grid[0] * grid[1]
        keep_all = torch.arange(length, device=imgs.device).expand(imgs.shape[0], -1)
        masking = MaskIndices(keep_all, keep_all, torch.zeros(imgs.shape[0], length, device=imgs.device))
        latent = self.forward_encoder(imgs, masking)
        if pool == "cls":
            return latent[:, 0]
        if pool == "mean":
            return latent[:, 1:].mean(dim=1)
        raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")


def _gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows ``ids`` [N, K] of the tokens ``x`` [N or 1, L, D] → [N, K, D]."""
    x = x.expand(ids.shape[0], -1, -1)
    return torch.gather(x, dim=1, index=ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _init_module(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.LayerNorm):
        nn.init.constant_(m.weight, 1.0)
        nn.init.constant_(m.bias, 0)


def create_model(name: str = "mae_vit_base_patch16", *, has_decoder: bool = True,
                 **overrides: Any) -> MaskedAutoencoderViT:
    """Build a registered preset, with any ``ModelConfig`` field overridden."""
    from .presets import get_preset

    return MaskedAutoencoderViT(get_preset(name, **overrides), has_decoder=has_decoder)
