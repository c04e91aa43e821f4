"""Per-epoch state of an evaluation that trains (linear probe, fine-tuning), so an interrupted
job continues from its last completed epoch instead of starting over.

The state file holds the trained modules' and the optimizer's state dicts, the epoch, the
history so far and every random generator the epoch loop draws from (torch, numpy, ``random``):
the epochs after a resume see the same shuffles, augmentations and dropout as an uninterrupted
run would (on a CPU; CUDA kernels may still differ in the last bits). It is written atomically
after each epoch and read back with the weights-only loader (``safe_torch_load``) (plain tensors, numbers, lists).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint.safe_load import safe_torch_load
from ..io_utils import write_atomic

STATE_FILE = "eval_state.pt"


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # type: ignore[misc]
    table = torch.from_numpy(np.asarray(keys).astype(np.int64))  # weights_only loads tensors
    return {"torch": torch.get_rng_state(), "numpy": [kind, table, pos, has_gauss, gauss],
            "random": list(random.getstate()[1]), "random_version": random.getstate()[0],
            "random_gauss": random.getstate()[2]}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate((state["random_version"], tuple(state["random"]), state["random_gauss"]))


def save_state(path: str | Path, epoch: int, modules: dict[str, nn.Module],
               optimizer: torch.optim.Optimizer, history: list[dict[str, Any]],
               extra: dict[str, Any] | None = None) -> None:
    """Write the state after ``epoch`` (1-based, completed) atomically."""
    state = {"epoch": epoch, "modules": {k: m.state_dict() for k, m in modules.items()},
             "optimizer": optimizer.state_dict(), "history": history, "rng": _rng_state(),
             "extra": extra or {}}
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | Path | None, modules: dict[str, nn.Module],
               optimizer: torch.optim.Optimizer) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """Restore ``modules``, ``optimizer`` and the random generators from ``path``; returns
    (completed epochs, history, extra). No file (or no path): (0, [], {}), nothing changed."""
    if path is None or not Path(path).is_file():
        return 0, [], {}
    state = safe_torch_load(path)
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    optimizer.load_state_dict(state["optimizer"])
    _set_rng_state(state["rng"])
    return int(state["epoch"]), list(state["history"]), dict(state["extra"])
