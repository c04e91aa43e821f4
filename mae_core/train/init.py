"""Start a run from a checkpoint's weights (``--init-from``, a job's ``init_from``): continue
pretraining an existing MAE on new images. Encoder and decoder both come from the file, so the
architecture (widths, depths, heads, patch size) must be the checkpoint's; the image size may
differ (the position tables are fixed sin-cos, rebuilt for the model's size)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..checkpoint.formats import has_decoder
from ..checkpoint.io import load_state_dict
from ..errors import CheckpointError, TrainingError
from ..model import MaskedAutoencoderViT

log = logging.getLogger(__name__)


def _describe(card: dict | None) -> str:
    cfg = (card or {}).get("model_config") or {}
    keys = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "decoder_embed_dim",
            "decoder_depth", "decoder_num_heads")
    return ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg) or "see its card"


def init_from_checkpoint(model: MaskedAutoencoderViT, path: str | Path) -> None:
    """Load every weight of ``model`` from the checkpoint at ``path``.

    Raises:
        TrainingError: the file is unreadable, has no decoder, or its architecture differs
            (the message lists the differing tensors and the checkpoint's architecture).
    """
    name = Path(path).name
    try:
        state, info = load_state_dict(path)
    except CheckpointError as exc:
        raise TrainingError(f"--init-from {name}: {exc}") from None
    if not has_decoder(state):
        raise TrainingError(
            f"--init-from {name}: the checkpoint has no decoder (encoder-only weights), so "
            "pretraining cannot continue from it; choose a checkpoint that can reconstruct")
    # The sin-cos position tables are fixed and follow the image size: the model keeps its own,
    # so a 224 px checkpoint can continue at another size.
    fixed = {"pos_embed", "decoder_pos_embed"}
    state = {k: v for k, v in state.items() if k not in fixed}
    expected = {k: v for k, v in model.state_dict().items() if k not in fixed}
    differ = sorted(k for k in expected if k not in state or tuple(state[k].shape) != tuple(expected[k].shape))
    extra = sorted(set(state) - set(expected))
    # Head counts leave no trace in tensor shapes: compare them with the checkpoint's card.
    card_cfg = (info.get("card") or {}).get("model_config") or {}
    differ += [f"{k} ({card_cfg[k]} in the checkpoint, {getattr(model.config, k)} here)"
               for k in ("num_heads", "decoder_num_heads")
               if k in card_cfg and card_cfg[k] != getattr(model.config, k)]
    if differ or extra:
        shown = ", ".join((differ + extra)[:4])
        raise TrainingError(
            f"--init-from {name}: its architecture differs from the model being trained "
            f"({len(differ) + len(extra)} tensors differ, e.g. {shown}); the checkpoint has "
            f"{_describe(info.get('card'))}: train with the same --model, overrides and --img-size")
    with torch.no_grad():
        missing, unexpected = model.load_state_dict(
            {k: v.to(expected[k].dtype) for k, v in state.items()}, strict=False)
    assert set(missing) <= fixed and not unexpected, (missing, unexpected)
    log.info("initialised the model from %s", name)
