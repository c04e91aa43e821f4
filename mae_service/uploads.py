"""Publishing an uploaded checkpoint: the project's safetensors, an official ``.pth`` or a
Hugging Face ``model.safetensors`` (with its ``config.json``), loaded safely (never unpickling
code), validated, and saved as ``<name>.safetensors`` + card in the data folder's checkpoints."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

from mae_core import load_model, save_model
from mae_core.checkpoint.catalog import ID_PATTERN
from mae_core.checkpoint.io import WEIGHT_SUFFIXES
from mae_core.errors import CheckpointError, InvalidParameterError

CARD_FORMAT_PREFIX = "mae-lab/"


def check_upload_name(name: str, folder: Path) -> str:
    """``name`` as a checkpoint id: letters, digits, '.', '_', '-'; not already taken."""
    if not ID_PATTERN.match(name or ""):
        raise InvalidParameterError(f"checkpoint name {name!r} must be 1-128 letters, digits, '.', "
                                    "'_' or '-', starting with a letter or digit")
    if any((folder / f"{name}{suffix}").exists() for suffix in WEIGHT_SUFFIXES):
        raise InvalidParameterError(f"a checkpoint named {name!r} exists already; choose another "
                                    "name or delete it first")
    return name


def publish_upload(weights: Path, filename: str, name: str, folder: Path, staging_root: Path,
                   companion: bytes | None = None) -> Path:
    """Validate and publish ``weights`` (a temp file holding the upload named ``filename``).

    ``companion`` is an optional JSON file sent with it: a Hugging Face ``config.json`` (model
    type ``vit_mae``) or the project's own card. Returns the published safetensors path.
    """
    suffix = Path(filename).suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise InvalidParameterError(f"{filename!r} is not a checkpoint file: send "
                                    f"{', '.join(WEIGHT_SUFFIXES)}")
    if suffix == ".safetensors" and not companion:
        # Head counts are not stored in the tensors: a guess would publish a different model.
        raise InvalidParameterError(
            f"{filename!r}: send its card (the MAE Lab .json beside it) or its Hugging Face "
            "config.json as `config` too: attention head counts cannot be read from the weights")
    name = check_upload_name(name, folder)
    staging = staging_root / f".upload-{secrets.token_hex(6)}"
    staging.mkdir(parents=True)
    try:
        staged = staging / f"model{suffix}"
        shutil.move(str(weights), staged)
        card_extra = _place_companion(companion, staged)
        model = load_model(staged)
        card = {**card_extra, "source": {"uploaded": filename, "layout": model.source_layout},
                "has_decoder": model.has_decoder}
        return save_model(model, folder / f"{name}.safetensors", card)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _place_companion(companion: bytes | None, staged: Path) -> dict[str, Any]:
    """Put the companion JSON where the loader reads it; return card sections to keep."""
    if not companion:
        return {}
    try:
        data = json.loads(companion)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"the JSON file sent with the weights is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError("the JSON file sent with the weights must hold an object")
    if data.get("model_type") == "vit_mae":
        (staged.parent / "config.json").write_bytes(companion)
        return {}
    if str(data.get("format", "")).startswith(CARD_FORMAT_PREFIX):
        staged.with_suffix(".json").write_bytes(companion)
        return {k: v for k, v in data.items() if k in ("training", "data", "quality", "licence")}
    raise CheckpointError("the JSON file sent with the weights is neither a Hugging Face ViTMAE "
                          "config.json (model_type vit_mae) nor an MAE Lab card")
