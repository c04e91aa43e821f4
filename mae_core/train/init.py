"""Start a run from a checkpoint's weights (``--init-from``, a job's ``init_from``): continue
pretraining an existing MAE on new images. Encoder and decoder both come from the file, so the
architecture (widths, depths, heads, patch size) must be the checkpoint's; the image size may
differ (the position tables are fixed sin-cos, rebuilt for the model's size).

``mae train`` and a job resolve such a run the same way, here: ``start_architecture`` (the
checkpoint's architecture unless the user names one) and ``lr_fields`` (a continued-pretraining
lr unless the user sets lr or blr)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from ..checkpoint.card import read_card
from ..checkpoint.formats import has_decoder
from ..checkpoint.io import checkpoint_config, load_state_dict
from ..errors import CheckpointError, InvalidParameterError, TrainingError, UnknownModelError
from ..model import MaskedAutoencoderViT
from ..presets import get_preset
from .fields import MODEL_OVERRIDE_FIELDS

if TYPE_CHECKING:
    from .config import TrainConfig

log = logging.getLogger(__name__)

# The lr of a run that starts from a checkpoint, unless lr or blr is set. A recipe's lr is a
# from-scratch lr (cpu-demo: 1e-3) and undoes what the checkpoint learnt. Measured (in-sample:
# the 6 bundled photos, masked-patch PSNR at 75% random, seed 0) continuing the default
# checkpoint (18.22 dB) for 40 steps of batch 6 on those photos: lr 2e-5 / 5e-5 / 1e-4 / 2e-4
# give 18.22 / 18.22 / 18.23 / 18.20 dB, 5e-4 17.90, 1e-3 17.07 (README, "Continue
# pretraining"). 1e-4 had the lowest masked MSE and sits 5x below where it starts to hurt.
CONTINUE_LR = 1e-4


def lr_fields(asked: Mapping[str, Any], recipe: "TrainConfig",
              from_checkpoint: bool) -> tuple[dict[str, Any], str | None]:
    """The optimiser's lr fields for a run, from the ``lr``/``blr`` the user or job gave, and a
    note when the choice needs saying: a given lr wins; a given blr clears the recipe's lr (so
    lr = blr * batch / 256); with neither, a run from a checkpoint takes CONTINUE_LR and any
    other run the recipe's."""
    if asked.get("lr") is not None:
        return {"lr": asked["lr"]}, None
    if asked.get("blr") is not None:
        return {"blr": asked["blr"], "lr": None}, None
    if from_checkpoint:
        return {"lr": CONTINUE_LR}, continue_lr_note(recipe)
    return {}, None


def continue_lr_note(recipe: "TrainConfig") -> str:
    """Why a run from a checkpoint trains at CONTINUE_LR (the job's notes, the CLI's log)."""
    o = recipe.optim
    theirs = f"lr {o.lr:g}" if o.lr is not None else f"blr {o.blr:g}"
    return (f"lr {CONTINUE_LR:g}: starting from a checkpoint, the continued-pretraining default "
            f"(the recipe's from-scratch {theirs} would undo what it learnt); set lr or blr to "
            "choose another")


def checkpoint_architecture(path: str | Path | None) -> dict[str, Any]:
    """img_size and every architecture override field of the checkpoint: its card's, or, for a
    file without one (an official .pth), what the loader builds for it (empty: unreadable; the
    run's load then says why)."""
    if not path:
        return {}
    try:
        cfg = (read_card(path) or {}).get("model_config") or checkpoint_config(path).to_dict()
    except (OSError, ValueError, CheckpointError):
        return {}
    arch = {k: cfg[k] for k in MODEL_OVERRIDE_FIELDS if isinstance(cfg.get(k), int)}
    size = cfg.get("img_size")
    if isinstance(size, (list, tuple)) and len(size) == 2 and size[0] == size[1]:
        arch["img_size"] = size[0]
    return arch


@dataclass(frozen=True)
class StartArchitecture:
    """What a run trains: a preset, its image size and the overrides on top of the preset."""

    model: str
    img_size: int
    overrides: dict[str, Any]


def start_architecture(path: str | Path | None, recipe: "TrainConfig", *, model: str | None = None,
                       img_size: int | None = None, overrides: Mapping[str, Any] | None = None,
                       label: str = "the checkpoint",
                       leave_out: str = "the model and architecture fields") -> StartArchitecture:
    """The architecture a run starting from the checkpoint at ``path`` uses (``path`` empty: the
    recipe's): the checkpoint's own, unless the user names a ``model`` (then only the overrides
    they name apply). ``img_size`` and ``overrides`` they name always win; when the result still
    differs from the checkpoint, the run is refused before it starts.

    Raises:
        InvalidParameterError: the preset cannot take these values, or the architecture asked for
            differs from the checkpoint's (the message lists each difference and ``leave_out``).
    """
    start = checkpoint_architecture(path)
    start_size = start.pop("img_size", None)
    name = model or recipe.model
    size = img_size if img_size is not None else (start_size or recipe.data.img_size)
    named = {**recipe.model_overrides, **(overrides or {})}
    chosen = named if model else {**recipe.model_overrides, **start, **named}
    try:
        arch = get_preset(name, img_size=size, **chosen)
    except (InvalidParameterError, UnknownModelError) as exc:
        raise InvalidParameterError(f"model {name} at {size} px: {exc}") from None
    differ = [f"{k}={start[k]} (asked: {getattr(arch, k)})" for k in start
              if getattr(arch, k) != start[k]]
    if differ:
        raise InvalidParameterError(
            f"{label} has {', '.join(differ)}, unlike model {name}"
            f"{' with ' + str(dict(named)) if named else ''}: leave {leave_out} out to train "
            "the checkpoint's architecture")
    return StartArchitecture(name, size, chosen)


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
