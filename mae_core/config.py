"""Model configuration: one frozen dataclass that fully describes an MAE architecture.

A checkpoint card stores ``ModelConfig.to_dict()``, so a model can be rebuilt from its file alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

LossOn = Literal["masked", "all"]


def _pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    h, w = value
    return (int(h), int(w))


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and loss options of a Masked Autoencoder.

    Attributes:
        img_size: input (height, width) in pixels; both must be multiples of ``patch_size``.
        patch_size: side of a square patch (16 for ViT-B/L, 14 for ViT-H).
        in_chans: image channels.
        embed_dim: encoder width D.
        depth: encoder blocks.
        num_heads: encoder attention heads.
        decoder_embed_dim: decoder width Dd (paper default 512; Table 1b ablates 128-1024).
        decoder_depth: decoder blocks (paper default 8; Table 1a ablates 1-12).
        decoder_num_heads: decoder attention heads.
        mlp_ratio: hidden width of each MLP relative to its block width.
        norm_pix_loss: regress per-patch normalised pixels (paper Table 1d, +0.5% ft).
        loss_on: "masked" (paper default) or "all" patches (about 0.5% worse, paper section 3).
        encoder_mask_tokens: the encoder also sees a mask token for every removed patch (the
            Table 1c / Table 2 baseline that MAE's speed-up is measured against).
        norm_eps: LayerNorm epsilon (1e-6 as the official code).
        drop_path_rate: stochastic depth of the last encoder block (linearly increasing over
            blocks); 0 for pretraining, 0.1-0.2 for fine-tuning (paper Table 9).
    """

    img_size: tuple[int, int] = (224, 224)
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    norm_pix_loss: bool = False
    loss_on: LossOn = "masked"
    encoder_mask_tokens: bool = False
    norm_eps: float = 1e-6
    drop_path_rate: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", _pair(self.img_size))
        h, w = self.img_size
        p = self.patch_size
        problems = []
        if p <= 0 or h % p or w % p:
            problems.append(f"img_size {h}x{w} must be a positive multiple of patch_size {p}")
        for width, heads, name in (
            (self.embed_dim, self.num_heads, "encoder"),
            (self.decoder_embed_dim, self.decoder_num_heads, "decoder"),
        ):
            if heads <= 0 or width % heads:
                problems.append(f"{name} width {width} must be divisible by its {heads} heads")
            if width % 4:
                problems.append(f"{name} width {width} must be divisible by 4 (2-D sin-cos table)")
        if self.depth < 1 or self.decoder_depth < 1:
            problems.append("encoder and decoder need at least one block each")
        if self.loss_on not in ("masked", "all"):
            problems.append(f"loss_on must be 'masked' or 'all', not {self.loss_on!r}")
        if problems:
            from .errors import InvalidParameterError

            raise InvalidParameterError("; ".join(problems))

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid (rows, columns)."""
        return (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)

    @property
    def num_patches(self) -> int:
        h, w = self.grid_size
        return h * w

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["img_size"] = list(self.img_size)
        if not d["extra"]:
            d.pop("extra")
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            from .errors import CheckpointError

            raise CheckpointError(f"model config has unknown fields {unknown}")
        return cls(**data)
