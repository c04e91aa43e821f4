"""Named model presets, registered with a decorator so tests can iterate over all of them."""

from __future__ import annotations

from typing import Any, Callable

from .config import ModelConfig
from .errors import UnknownModelError

_PRESETS: dict[str, Callable[[], ModelConfig]] = {}


def register_preset(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    """Register ``fn`` (returning a ModelConfig) under its function name."""
    _PRESETS[fn.__name__] = fn
    return fn


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str, **overrides: Any) -> ModelConfig:
    """The preset's config with ``overrides`` applied (e.g. ``img_size=64``, ``decoder_depth=1``)."""
    try:
        config = _PRESETS[name]()
    except KeyError:
        raise UnknownModelError(
            f"unknown model preset {name!r}; choose one of {', '.join(list_presets())}"
        ) from None
    return config.replace(**overrides) if overrides else config


# The paper's models: all share the 512-d, 8-block decoder (paper section 4, Table 1 defaults).
@register_preset
def mae_vit_base_patch16() -> ModelConfig:
    return ModelConfig(patch_size=16, embed_dim=768, depth=12, num_heads=12)


@register_preset
def mae_vit_large_patch16() -> ModelConfig:
    return ModelConfig(patch_size=16, embed_dim=1024, depth=24, num_heads=16)


@register_preset
def mae_vit_huge_patch14() -> ModelConfig:
    return ModelConfig(patch_size=14, embed_dim=1280, depth=32, num_heads=16)


# CPU-sized models. Their decoders are narrower than the paper's: with a 192/384-d encoder a
# 512-d decoder would cost more than the encoder, and Table 1a/1b show narrow, shallow decoders
# lose little reconstruction ability.
@register_preset
def mae_vit_tiny_patch16() -> ModelConfig:
    return ModelConfig(
        patch_size=16, embed_dim=192, depth=12, num_heads=3,
        decoder_embed_dim=128, decoder_depth=4, decoder_num_heads=4,
    )


@register_preset
def mae_vit_small_patch16() -> ModelConfig:
    return ModelConfig(
        patch_size=16, embed_dim=384, depth=12, num_heads=6,
        decoder_embed_dim=256, decoder_depth=4, decoder_num_heads=8,
    )
