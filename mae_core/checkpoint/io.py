"""Load any supported checkpoint into ``MaskedAutoencoderViT``; save the project's own format."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import ModelConfig
from ..errors import CheckpointError, MAEError
from ..io_utils import write_atomic, write_json_atomic
from ..model import MaskedAutoencoderViT
from .card import make_card, read_card
from .formats import HUGGINGFACE, has_decoder, infer_config, to_canonical, unwrap
from .safe_load import safe_torch_load

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def load_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read weights from any supported file; returns (canonical state dict, info).

    ``info`` has ``layout`` (official / huggingface), ``card`` (or None) and ``meta`` (non-weight
    entries of a torch file, e.g. ``epoch`` and ``args`` of an official training checkpoint).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            raw: Any = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path.name} is not a readable safetensors file: {exc}") from None
    else:
        raw = safe_torch_load(path)
    state, meta = unwrap(raw)
    state, layout = to_canonical(state)
    return state, {"layout": layout, "card": read_card(path), "meta": meta}


def load_model(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    config: ModelConfig | None = None,
) -> MaskedAutoencoderViT:
    """Build the model a checkpoint describes and load its weights strictly.

    Works for official ``.pth`` files (encoder-only pretrain, encoder+decoder visualize, training
    checkpoints with ``args``), Hugging Face ``ViTMAEForPreTraining`` state dicts, timm MAE encoder
    weights and the project's safetensors + card format. Encoder-only files load for probing and
    fine-tuning; such a model raises DecoderMissingError if asked to reconstruct.
    """
    state, info = load_state_dict(path)
    card = info["card"] or {}
    if config is None:
        config = _config_for(state, card, info, Path(path))
    encoder_only = not has_decoder(state)
    # an encoder-only file keeps a randomly initialised decoder; reconstruct refuses it
    model = MaskedAutoencoderViT(config, has_decoder=not encoder_only)
    expected = model.state_dict()
    if encoder_only:
        state = {**{k: v for k, v in expected.items() if is_decoder_key(k)}, **state}
    _check_shapes(state, expected, Path(path).name)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{Path(path).name} does not match the inferred architecture: {exc}") from None
    model.card = card  # type: ignore[assignment]
    model.source_layout = info["layout"]  # type: ignore[attr-defined]
    return model.to(device)


def checkpoint_config(path: str | Path) -> ModelConfig:
    """The architecture ``load_model`` builds for the file at ``path``: its card's, a training
    checkpoint's run config, a Hugging Face config.json beside it, or inferred from its shapes."""
    state, info = load_state_dict(path)
    return _config_for(state, info["card"] or {}, info, Path(path))


def _config_for(state, card, info, path: Path) -> ModelConfig:
    if card.get("model_config"):
        return ModelConfig.from_dict(card["model_config"])
    trained = _training_config(info["meta"])
    if trained is not None:
        return trained
    known: dict[str, Any] = {}
    if info["layout"] == HUGGINGFACE:
        known.update(_hf_config_fields(path.parent / "config.json"))
    args = info["meta"].get("args")
    if args is not None and getattr(args, "norm_pix_loss", None) is not None:
        known["norm_pix_loss"] = bool(args.norm_pix_loss)
    if args is not None and getattr(args, "input_size", None):
        known["img_size"] = int(args.input_size)
    return infer_config(state, **known)


def _training_config(meta: dict[str, Any]) -> ModelConfig | None:
    """The architecture a ``mae train`` checkpoint (``ckpt_*.pt``) was built with, from the run
    config it carries: head counts cannot be read from tensor shapes."""
    from ..presets import get_preset

    raw = meta.get("config")
    try:
        cfg = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        return None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), str):
        return None
    data: dict[str, Any] = cfg["data"] if isinstance(cfg.get("data"), dict) else {}
    try:
        return get_preset(cfg["model"], **(cfg.get("model_overrides") or {}),
                          **({"img_size": data["img_size"]} if data.get("img_size") else {}),
                          norm_pix_loss=bool(cfg.get("norm_pix_loss", False)))
    except (KeyError, TypeError, ValueError, MAEError):
        return None


def _hf_config_fields(config_json: Path) -> dict[str, Any]:
    """Fields from a transformers ViTMAEConfig beside the weights (eps 1e-12 by default)."""
    fields: dict[str, Any] = {"norm_eps": 1e-12}
    if not config_json.is_file():
        return fields
    try:
        cfg = json.loads(config_json.read_text())
    except (OSError, json.JSONDecodeError):
        return fields
    mapping = {
        "layer_norm_eps": "norm_eps", "num_attention_heads": "num_heads",
        "decoder_num_attention_heads": "decoder_num_heads", "norm_pix_loss": "norm_pix_loss",
    }
    fields.update({ours: cfg[theirs] for theirs, ours in mapping.items() if theirs in cfg})
    return fields


def is_decoder_key(key: str) -> bool:
    """True for the state-dict keys of the decoder (official names): everything a
    reconstruction needs beyond the encoder."""
    return key.startswith(("decoder_", "mask_token"))


def _check_shapes(state, expected, name: str) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{name}: keys do not match the official MAE layout; missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}"
        )
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointError(f"{name}: tensor shapes do not match: {'; '.join(wrong[:3])}")


def save_model(
    model: MaskedAutoencoderViT,
    path: str | Path,
    card: dict[str, Any] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``path`` (.safetensors, official key names) and its JSON card, both atomically."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    module = getattr(model, "module", model)  # unwrap DDP
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in module.state_dict().items()
               if module.has_decoder or not is_decoder_key(k)}  # never ship a random decoder
    card = {**(card or {}), "has_decoder": module.has_decoder}
    dtype_name = str(dtype).removeprefix("torch.")
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    write_json_atomic(
        path.with_suffix(".json"), make_card(module.config.to_dict(), dtype_name, card)
    )
    return path


@dataclass
class CheckpointInfo:
    """One entry of a checkpoint folder, as listed by ``list_checkpoints``."""

    id: str
    path: Path
    card: dict[str, Any] = field(default_factory=dict)
    can_reconstruct: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "file": self.path.name, "card": self.card,
                "can_reconstruct": self.can_reconstruct, "error": self.error}


def list_checkpoints(folder: str | Path, *, confined: bool = False) -> list[CheckpointInfo]:
    """Every weights file directly in ``folder``, with its card; broken files carry ``error``.

    Each file's tensor names and shapes are checked against the architecture its card (or its
    shapes) describe, so a truncated or mismatched file is listed as broken before anyone loads
    it. A safetensors file with a card is checked from its header alone; other files are read.
    ``confined=True`` (the web service) refuses files or cards that resolve outside ``folder``
    (a symlink pointing elsewhere), without reading them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    root = folder.resolve()
    infos = []
    for path in sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file()):
        info = CheckpointInfo(id=path.stem, path=path)
        try:
            if confined:
                _check_inside(path, root)
            card = read_card(path)
            if card and card.get("model_config"):
                info.card = card
                state = _header_state(path) if path.suffix == ".safetensors" else load_state_dict(path)[0]
                info.can_reconstruct = bool(card.get("has_decoder", True)) and has_decoder(state)
                _check_layout(state, ModelConfig.from_dict(card["model_config"]), path.name)
            else:
                state, loaded = load_state_dict(path)
                config = _config_for(state, card or {}, loaded, path)  # what load_model builds
                info.card = card or {"model_config": config.to_dict(), "layout": loaded["layout"]}
                info.can_reconstruct = has_decoder(state)
                _check_layout(state, config, path.name)
        except Exception as exc:  # noqa: BLE001 - a broken file is listed, never fatal
            info.error = str(exc)
            info.can_reconstruct = False
        infos.append(info)
    return infos


def _check_inside(path: Path, root: Path) -> None:
    for candidate in (path, path.with_suffix(".json")):
        if candidate.exists() and not candidate.resolve().is_relative_to(root):
            raise CheckpointError(
                f"{candidate.name} is a link to a file outside the checkpoint folder; copy the "
                "file into the folder instead of linking to it"
            )


def _header_state(path: Path) -> dict[str, torch.Tensor]:
    """Tensor names and shapes of a safetensors file as meta tensors (no data is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name} is not a readable safetensors file: {exc}") from None
    return to_canonical({k: torch.empty(s, device="meta") for k, s in shapes.items()})[0]


def _check_layout(state: dict[str, torch.Tensor], config: ModelConfig, name: str) -> None:
    """Raise CheckpointError unless ``state`` has exactly the tensors ``config``'s model needs
    (the decoder may be absent); the model is built on the meta device, so this costs no memory."""
    with torch.device("meta"):
        expected = MaskedAutoencoderViT(config).state_dict()
    if not has_decoder(state):
        expected = {k: v for k, v in expected.items() if not is_decoder_key(k)}
    _check_shapes(state, expected, name)
