"""Resumable training state: written atomically, read with the weights-only loader.

Layout in a run folder::

    checkpoints/ckpt_00001000.pt   model, optimizer, scaler, counters, RNG states
    checkpoints/latest             the file name of the newest complete checkpoint

``latest`` is replaced only after its checkpoint is fully on disk, so a kill at any moment
leaves a loadable ``latest``.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np
import torch

from ..checkpoint.safe_load import safe_torch_load
from ..errors import TrainingError
from ..io_utils import write_atomic, write_bytes_atomic

log = logging.getLogger(__name__)

LATEST = "latest"


def rng_state() -> dict[str, Any]:
    np_state = cast(tuple, np.random.get_state(legacy=True))  # (kind, keys, pos, gauss...)
    state = {
        "python": random.getstate(),
        "numpy": {"kind": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuplify(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_training_state(folder: Path, step: int, state: dict[str, Any], keep_last: int,
                        fence: Callable[[], None] | None = None) -> Path:
    """Write ``ckpt_{step}.pt`` atomically, then point ``latest`` at it, then prune old ones.

    ``fence`` (if given) runs before each of the three writes and raises to stop them: writing
    a checkpoint takes a while, and a worker may lose its job meanwhile.
    """
    fence = fence or (lambda: None)
    fence()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint_name(step)
    write_atomic(path, lambda tmp: torch.save(state, tmp))
    fence()
    write_bytes_atomic(folder / LATEST, path.name.encode())
    fence()
    checkpoints = sorted(folder.glob("ckpt_*.pt"))
    for old in checkpoints[:-keep_last] if keep_last > 0 else []:
        old.unlink(missing_ok=True)
    return path


def checkpoint_name(step: int) -> str:
    return f"ckpt_{step:08d}.pt"


def latest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint ``latest`` names (a file in ``folder``), None without a pointer."""
    pointer = folder / LATEST
    if not pointer.exists():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingError(f"{pointer} cannot be read ({exc}); delete it to start over") from None
    if not name or Path(name).name != name or name in (".", ".."):
        raise TrainingError(f"{pointer} must name a checkpoint file in {folder}, not {name[:80]!r}")
    path = folder / name
    if not path.is_file():
        raise TrainingError(f"{pointer} points at {path.name}, which is missing")
    return path


def load_training_state(path: Path) -> dict[str, Any]:
    state = safe_torch_load(path)
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise TrainingError(f"{path} is not a training checkpoint of this project")
    return state
