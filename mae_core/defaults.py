"""Where things live by default.

Nothing here points into a source checkout. What a user makes (the data folder: job store, run
folders, trained and downloaded checkpoints, benchmark results) defaults to ``var/`` in the
current directory, settable by ``$MAE_DATA_DIR`` (and ``--data-dir`` on the commands).
The embedded default checkpoint ships inside the package.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError

DEFAULT_CHECKPOINT_ID = "mae-lab-default"
_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir() -> Path:
    """``$MAE_DATA_DIR`` or ``var/`` in the current directory."""
    return Path(os.environ.get("MAE_DATA_DIR") or Path.cwd() / "var")


def checkpoint_dir() -> Path:
    """``$MAE_CHECKPOINT_DIR`` or the data folder's ``checkpoints/`` (where ``mae checkpoints
    pull`` downloads and finished training jobs publish)."""
    return Path(os.environ.get("MAE_CHECKPOINT_DIR") or data_dir() / "checkpoints")


def embedded_checkpoint_dir() -> Path:
    """The folder holding the embedded default checkpoint: ``mae_core/embedded_checkpoint`` in an
    installed wheel (pyproject maps the repository's ``checkpoints/`` there), the repository's
    ``checkpoints/`` in a source checkout or editable install."""
    installed = _PACKAGE_DIR / "embedded_checkpoint"
    if (installed / f"{DEFAULT_CHECKPOINT_ID}.safetensors").is_file():
        return installed
    return _PACKAGE_DIR.parent / "checkpoints"


def checkpoint_folders(data: Path | None = None) -> list[Path]:
    """Where checkpoints are looked up by id, first match wins (the web app's order): the
    checkpoint folder, the data folder's ``checkpoints/`` (models of finished training jobs),
    then the embedded default's folder."""
    folders = [checkpoint_dir(), (data or data_dir()) / "checkpoints", embedded_checkpoint_dir()]
    return [f for i, f in enumerate(folders) if f not in folders[:i]]


def default_checkpoint_path() -> Path:
    """The default checkpoint: ``mae-lab-default.safetensors`` in the checkpoint folder if one is
    there (a retrained default), else the embedded one."""
    for folder in checkpoint_folders():
        path = folder / f"{DEFAULT_CHECKPOINT_ID}.safetensors"
        if path.is_file():
            return path
    raise CheckpointError(
        f"the default checkpoint {DEFAULT_CHECKPOINT_ID}.safetensors is in none of "
        f"{', '.join(map(str, checkpoint_folders()))} (the installation is incomplete); pass "
        "--checkpoint FILE or set MAE_CHECKPOINT_DIR to a folder holding it"
    )
