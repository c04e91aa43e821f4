"""Export a model to the files other tools load: a Hugging Face ``ViTMAEForPreTraining`` folder,
timm ``VisionTransformer`` encoder weights, or the official facebookresearch/mae ``.pth`` layout.

Our state dict already uses the official key names (which are timm's block names), so the timm
and official exports are selections of it; the Hugging Face export goes through the one key
mapping in ``formats.to_huggingface``. None of this imports transformers or timm: the files are
written from what the formats specify, and the tests load them with the real libraries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..errors import CheckpointError, InvalidParameterError
from ..io_utils import write_atomic, write_json_atomic
from ..model import MaskedAutoencoderViT
from .formats import to_huggingface

TARGETS = ("hf", "timm", "official")
_ENCODER_PREFIXES = ("cls_token", "pos_embed", "patch_embed.", "blocks.", "norm.")


def huggingface_config(model: MaskedAutoencoderViT) -> dict[str, Any]:
    """``config.json`` of the equivalent ``transformers.ViTMAEConfig`` (model_type vit_mae)."""
    c = model.config
    if c.img_size[0] != c.img_size[1]:
        raise CheckpointError(f"transformers' ViTMAE needs square images; this model is {c.img_size}")
    return {
        "architectures": ["ViTMAEForPreTraining"], "model_type": "vit_mae",
        "hidden_size": c.embed_dim, "num_hidden_layers": c.depth, "num_attention_heads": c.num_heads,
        "intermediate_size": int(c.embed_dim * c.mlp_ratio), "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
        "layer_norm_eps": c.norm_eps, "image_size": c.img_size[0], "patch_size": c.patch_size,
        "num_channels": c.in_chans, "qkv_bias": True,
        "decoder_hidden_size": c.decoder_embed_dim, "decoder_num_hidden_layers": c.decoder_depth,
        "decoder_num_attention_heads": c.decoder_num_heads,
        "decoder_intermediate_size": int(c.decoder_embed_dim * c.mlp_ratio),
        "mask_ratio": 0.75, "norm_pix_loss": c.norm_pix_loss,
    }


def export_huggingface(model: MaskedAutoencoderViT, folder: str | Path) -> Path:
    """Write ``folder/config.json`` + ``folder/model.safetensors`` (the Hub layout, which every
    transformers version reads) so that ``ViTMAEForPreTraining.from_pretrained(folder)`` computes
    this model's outputs for the same ``noise``."""
    if not model.has_decoder:
        raise CheckpointError("this model has no trained decoder, and ViTMAEForPreTraining needs "
                              "one: export it with --to timm (encoder weights) instead")
    if model.config.loss_on != "masked" or model.config.encoder_mask_tokens:
        raise CheckpointError("transformers' ViTMAE computes the loss on masked patches with a "
                              "visible-only encoder; this model's options have no equivalent there")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = _contiguous(to_huggingface(model.state_dict()))
    _save_safetensors(tensors, folder / "model.safetensors")
    write_json_atomic(folder / "config.json", huggingface_config(model))
    return folder


def timm_encoder_state(model: MaskedAutoencoderViT) -> dict[str, torch.Tensor]:
    """The encoder's tensors under timm ``VisionTransformer`` names (class token, learned-shape
    position table with the class slot, blocks, final norm), for ``num_classes=0`` models."""
    return {k: v for k, v in model.state_dict().items() if k.startswith(_ENCODER_PREFIXES)}


def export_timm(model: MaskedAutoencoderViT, path: str | Path) -> Path:
    """Write timm encoder weights as safetensors; load with
    ``timm.create_model("vit_base_patch16_224", pretrained=True, num_classes=0,
    pretrained_cfg_overlay=dict(file=path))`` (or ``load_state_dict(..., strict=True)``)."""
    path = Path(path)
    _save_safetensors(_contiguous(timm_encoder_state(model)), path)
    return path


def export_official(model: MaskedAutoencoderViT, path: str | Path) -> Path:
    """Write ``{"model": state_dict}`` as facebookresearch/mae's checkpoints are saved
    (``mae_visualize_*`` with a decoder; ``mae_pretrain_*`` encoder-only when there is none)."""
    path = Path(path)
    state = model.state_dict() if model.has_decoder else timm_encoder_state(model)
    write_atomic(path, lambda tmp: torch.save({"model": _contiguous(state)}, tmp))
    return path


def export_model(model: MaskedAutoencoderViT, out: str | Path, to: str) -> Path:
    """Dispatch on ``to`` (one of ``TARGETS``)."""
    exporters = {"hf": export_huggingface, "timm": export_timm, "official": export_official}
    if to not in exporters:
        raise InvalidParameterError(f"unknown export target {to!r}; choose one of {', '.join(TARGETS)}")
    return exporters[to](model, out)


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
