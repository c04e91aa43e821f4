"""The JSON card that travels with every checkpoint in the project's own format.

``NAME.safetensors`` holds the weights (official key names); ``NAME.json`` beside it holds the
card: the model config (enough to rebuild the model), ``norm_pix_loss``, the stored dtype, and
free-form ``training`` / ``data`` / ``quality`` sections written by the trainer and benchmarks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

CARD_FORMAT = "mae-lab/checkpoint-v1"


def card_path_for(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def read_card(weights: str | Path) -> dict[str, Any] | None:
    """The card beside ``weights``, or None if there is none. Malformed cards raise."""
    path = card_path_for(weights)
    if not path.exists():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"card {path.name} is not valid JSON: {exc}") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"card {path.name} must hold a JSON object")
    return card


def make_card(model_config: dict[str, Any], dtype: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "model_config": model_config,
        "norm_pix_loss": bool(model_config.get("norm_pix_loss", False)),
        "dtype": dtype,
    }
    for key, value in (extra or {}).items():
        if key in ("format", "model_config", "dtype"):
            continue
        card[key] = value
    return card
