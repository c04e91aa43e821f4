"""The only place this project unpickles anything: ``torch.load(weights_only=True)``.

Official training checkpoints carry ``args`` as an ``argparse.Namespace``; torch's weights-only
unpickler refuses unknown classes, so that one class is allow-listed. Nothing else is, and there is
no fallback to full unpickling: a file with a pickled callable is refused without running it.
(An explicit ``weights_only=True`` is not overridden by TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.)
"""

from __future__ import annotations

import argparse
import pickle
import re
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
        reason = _unpickler_reason(exc)
        if "GLOBAL" not in str(exc):  # no class or function asked for: damaged or not a pickle
            raise CheckpointError(
                f"{path.name} is not a readable torch checkpoint ({reason}); the file may be "
                "truncated or of another format"
            ) from None
        raise UnsafeCheckpointError(
            f"{path.name} was refused: it needs unsafe unpickling ({reason}). "
            "Only tensors, plain containers and argparse.Namespace are accepted; re-save the "
            "state dict with torch.save(model.state_dict(), ...) or as safetensors."
        ) from None
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - damaged files raise anything from IndexError to AssertionError
        raise CheckpointError(
            f"{path.name} is not a readable torch checkpoint ({_first_line(exc)}); "
            "the file may be truncated or of another format"
        ) from None


def _unpickler_reason(exc: BaseException) -> str:
    """The part of torch's long weights-only message that says what was refused."""
    text = str(exc)
    found = re.search(r"[Uu]nsupported (?:global|GLOBAL|operand)[^\n]*", text)
    if found is None:
        return _first_line(exc)
    return found.group(0).split(". Please use")[0].rstrip(". ")[:300]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
