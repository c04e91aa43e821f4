"""The only place this project unpickles anything: ``torch.load(weights_only=True)``.

Official training checkpoints carry ``args`` as an ``argparse.Namespace``; torch's weights-only
unpickler refuses unknown classes, so that one class is allow-listed. Nothing else is, and there is
no fallback to full unpickling: a file with a pickled callable is refused without running it.
(An explicit ``weights_only=True`` is not overridden by TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.)
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UnsafeCheckpointError

ALLOWED_GLOBALS: list[Any] = [argparse.Namespace]


def safe_torch_load(path: str | Path) -> Any:
    """Load a ``torch.save`` file with the weights-only unpickler onto the CPU."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{path.name} was refused: it needs unsafe unpickling ({_first_line(exc)}). "
            "Only tensors, plain containers and argparse.Namespace are accepted; re-save the "
            "state dict with torch.save(model.state_dict(), ...) or as safetensors."
        ) from None
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file not found: {path}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path.name} is not a readable torch checkpoint ({_first_line(exc)}); "
            "the file may be truncated or of another format"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
