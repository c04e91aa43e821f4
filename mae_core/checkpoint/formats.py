"""Checkpoint layouts: detection, conversion to the official key names, architecture inference.

Every layout is converted to the official facebookresearch/mae key names ("canonical"), which is
also what ``MaskedAutoencoderViT.state_dict()`` produces. Adapting a layout happens only here.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..config import ModelConfig
from ..errors import CheckpointError
from ..presets import get_preset, list_presets

StateDict = dict[str, torch.Tensor]

OFFICIAL = "official"
HUGGINGFACE = "huggingface"

_CONTAINER_KEYS = ("model", "state_dict", "model_state", "module")


def unwrap(obj: Any) -> tuple[StateDict, dict[str, Any]]:
    """Find the state dict inside a loaded file; return it and the rest (metadata)."""
    meta: dict[str, Any] = {}
    while isinstance(obj, dict) and not _is_state_dict(obj):
        inner = next((k for k in _CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise CheckpointError(
                "no model weights found in the file: expected a state dict or a dict with a "
                f"'model' entry, got keys {sorted(map(str, obj))[:10]}"
            )
        meta.update({k: v for k, v in obj.items() if k != inner})
        obj = obj[inner]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError("the file holds no tensors")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    return state, meta


def _is_state_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def detect_layout(state: StateDict) -> str:
    if "vit.embeddings.cls_token" in state:
        return HUGGINGFACE
    if "cls_token" in state and "patch_embed.proj.weight" in state:
        return OFFICIAL
    if "head.weight" in state and "cls_token" in state:
        return OFFICIAL
    raise CheckpointError(
        "unrecognised checkpoint layout: expected official MAE keys (cls_token, patch_embed.*, "
        "blocks.*) or Hugging Face ViTMAE keys (vit.embeddings.*); first keys were "
        f"{sorted(state)[:6]}"
    )


def to_canonical(state: StateDict) -> tuple[StateDict, str]:
    """Convert any supported layout to official key names. Returns (state, layout)."""
    layout = detect_layout(state)
    if layout == HUGGINGFACE:
        state = _from_huggingface(state)
    return _drop_classifier(state), layout


def _drop_classifier(state: StateDict) -> StateDict:
    if "norm.weight" not in state and "fc_norm.weight" in state:
        raise CheckpointError(
            "this is a fine-tuned classifier (global pooling with fc_norm, no encoder 'norm'); "
            "MAE Lab loads pre-trained MAE encoders and encoder+decoder files such as "
            "mae_pretrain_vit_*.pth or mae_visualize_vit_*.pth"
        )
    return {k: v for k, v in state.items() if not k.startswith(("head.", "fc_norm."))}


# --- Hugging Face ViTMAEForPreTraining (Hub layout, plus transformers 5.x decoder variant) ---
_HF_BLOCK = {
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    # transformers 5.x in-memory names
    "attention.o_proj": "attn.proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_HF_SINGLE = {
    "vit.embeddings.cls_token": "cls_token",
    "vit.embeddings.position_embeddings": "pos_embed",
    "vit.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "vit.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "vit.layernorm.weight": "norm.weight",
    "vit.layernorm.bias": "norm.bias",
    "decoder.mask_token": "mask_token",
    "decoder.decoder_pos_embed": "decoder_pos_embed",
}
_HF_BLOCK_PREFIXES = (
    (re.compile(r"^vit\.encoder\.layer\.(\d+)\.(.+)$"), "blocks"),
    (re.compile(r"^vit\.layers\.(\d+)\.(.+)$"), "blocks"),
    (re.compile(r"^decoder\.decoder_layers\.(\d+)\.(.+)$"), "decoder_blocks"),
    (re.compile(r"^decoder\.decoder_encoder\.layer\.(\d+)\.(.+)$"), "decoder_blocks"),
)


def _from_huggingface(state: StateDict) -> StateDict:
    out: StateDict = {}
    qkv: dict[tuple[str, int, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key in _HF_SINGLE:
            out[_HF_SINGLE[key]] = value
            continue
        for pattern, stack in _HF_BLOCK_PREFIXES:
            m = pattern.match(key)
            if m:
                index, rest = int(m.group(1)), m.group(2)
                qm = re.match(r"attention\.(?:attention\.)?(query|key|value|q|k|v)(?:_proj)?\.(weight|bias)$", rest)
                if qm:
                    part = {"q": "query", "k": "key", "v": "value"}.get(qm.group(1), qm.group(1))
                    qkv.setdefault((stack, index, qm.group(2)), {})[part] = value
                else:
                    out[f"{stack}.{index}.{_hf_block_name(key, rest)}"] = value
                break
        else:
            m = re.match(r"^decoder\.(decoder_embed|decoder_norm|decoder_pred)\.(weight|bias)$", key)
            if not m:
                raise CheckpointError(f"unexpected Hugging Face ViTMAE key {key!r}")
            out[f"{m.group(1)}.{m.group(2)}"] = value
    for (stack, index, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise CheckpointError(f"{stack} layer {index} lacks one of query/key/value {kind}")
        # official qkv rows are [q; k; v]
        out[f"{stack}.{index}.attn.qkv.{kind}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0
        )
    return out


def _hf_block_name(key: str, rest: str) -> str:
    for hf_name, name in _HF_BLOCK.items():
        if rest.startswith(hf_name + "."):
            return name + rest[len(hf_name):]
    raise CheckpointError(f"unexpected Hugging Face ViTMAE layer key {key!r}")


def to_huggingface(state: StateDict) -> StateDict:
    """Official key names → Hugging Face Hub layout (the inverse of the import)."""
    inverse_single = {v: k for k, v in _HF_SINGLE.items()}
    inverse_block = {v: k for k, v in _HF_BLOCK.items()}
    out: StateDict = {}
    for key, value in state.items():
        if key in inverse_single:
            out[inverse_single[key]] = value
            continue
        m = re.match(r"^(blocks|decoder_blocks)\.(\d+)\.(.+)$", key)
        if m:
            stack, index, rest = m.groups()
            prefix = f"vit.encoder.layer.{index}." if stack == "blocks" else f"decoder.decoder_layers.{index}."
            if rest.startswith("attn.qkv."):
                kind = rest.rsplit(".", 1)[1]
                for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                    out[f"{prefix}attention.attention.{name}.{kind}"] = part.clone()
                continue
            name, _, tail = rest.rpartition(".")
            out[f"{prefix}{inverse_block[name]}.{tail}"] = value
            continue
        out[f"decoder.{key}"] = value  # decoder_embed / decoder_norm / decoder_pred
    return out


# --- architecture inference -----------------------------------------------------------------
def has_decoder(state: StateDict) -> bool:
    return "decoder_pred.weight" in state


def infer_config(state: StateDict, **known: Any) -> ModelConfig:
    """Infer a ModelConfig from tensor shapes (canonical keys).

    Head counts are not visible in shapes: a registered preset with the same widths and depths
    supplies them; otherwise 64-d encoder heads and 32-d decoder heads (the paper's choices) are
    assumed. ``known`` fields (e.g. from a card or a HF config) take precedence.
    """
    try:
        embed_dim = state["cls_token"].shape[-1]
        proj = state["patch_embed.proj.weight"]
        num_patches = state["pos_embed"].shape[1] - 1
    except KeyError as exc:
        raise CheckpointError(f"checkpoint lacks the encoder tensor {exc.args[0]!r}") from None
    patch_size, in_chans = proj.shape[-1], proj.shape[1]
    side = int(round(num_patches**0.5))
    if side * side != num_patches and "img_size" not in known:
        raise CheckpointError(
            f"pos_embed has {num_patches} patches, not a square grid; pass img_size explicitly"
        )
    depth = _count_blocks(state, "blocks")
    fields: dict[str, Any] = dict(
        img_size=(side * patch_size, side * patch_size),
        patch_size=patch_size,
        in_chans=in_chans,
        embed_dim=embed_dim,
        depth=depth,
        mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
    )
    if has_decoder(state):
        fields.update(
            decoder_embed_dim=state["mask_token"].shape[-1],
            decoder_depth=_count_blocks(state, "decoder_blocks"),
        )
    preset = _matching_preset(fields)
    if preset is not None:
        fields.setdefault("num_heads", preset.num_heads)
        if has_decoder(state) and fields["decoder_embed_dim"] == preset.decoder_embed_dim:
            fields.setdefault("decoder_num_heads", preset.decoder_num_heads)
    fields.setdefault("num_heads", max(1, embed_dim // 64))
    if has_decoder(state):
        fields.setdefault("decoder_num_heads", max(1, fields["decoder_embed_dim"] // 32))
    fields.update(known)
    return ModelConfig(**fields)


def _count_blocks(state: StateDict, stack: str) -> int:
    indices = {int(m.group(1)) for k in state if (m := re.match(rf"^{stack}\.(\d+)\.", k))}
    if not indices:
        raise CheckpointError(f"checkpoint has no {stack}.* tensors")
    if indices != set(range(len(indices))):
        raise CheckpointError(f"{stack} indices are not contiguous: {sorted(indices)}")
    return len(indices)


def _matching_preset(fields: dict[str, Any]) -> ModelConfig | None:
    for name in list_presets():
        p = get_preset(name)
        if (p.embed_dim, p.depth, p.patch_size) == (
            fields["embed_dim"], fields["depth"], fields["patch_size"]
        ):
            return p
    return None
