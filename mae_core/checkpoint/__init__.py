"""Checkpoints: load any supported layout, save the project's own format, download officials."""

from .card import CARD_FORMAT, card_path_for
from .io import CheckpointInfo, list_checkpoints, load_model, load_state_dict, save_model

__all__ = [
    "CARD_FORMAT",
    "CheckpointInfo",
    "card_path_for",
    "list_checkpoints",
    "load_model",
    "load_state_dict",
    "save_model",
]
