"""Where things live by default: the checkpoint folder and the embedded default checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT_ID = "mae-lab-default"


def checkpoint_dir() -> Path:
    """``$MAE_CHECKPOINT_DIR`` or the repository's ``checkpoints/`` folder."""
    return Path(os.environ.get("MAE_CHECKPOINT_DIR") or REPO_ROOT / "checkpoints")


def default_checkpoint_path() -> Path:
    path = checkpoint_dir() / f"{DEFAULT_CHECKPOINT_ID}.safetensors"
    if not path.is_file():
        raise CheckpointError(
            f"the default checkpoint {path} is missing; pass --checkpoint FILE or set "
            "MAE_CHECKPOINT_DIR to a folder holding mae-lab-default.safetensors"
        )
    return path
