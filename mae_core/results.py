"""Result files other than run folders: what a benchmark or ablation JSON file holds, once.

Writers (``mae bench``, ``mae ablate``) build their files with these functions and readers (the
Analysis page) check what they load against the same definitions. Every file is
``{"meta": {...}, "rows": [...]}`` plus its own keys; ``meta`` always says when, on what machine
and with which torch it was made (``machine_meta``).
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch

ABLATION_FACTORS: tuple[str, ...] = ("mask_ratio", "strategy", "decoder_depth", "norm_pix")
ABLATION_COMMAND = "mae ablate"
# meta keys every result file carries (written by machine_meta)
MACHINE_KEYS: tuple[str, ...] = ("date", "cpu", "torch", "device", "python")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_meta(device: torch.device | str) -> dict[str, Any]:
    """When, where and with what a result was made: date (UTC), CPU, torch, device, Python."""
    device = torch.device(device)
    meta: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
    return meta


def ablation_result(factor: str, meta: dict[str, Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """An ablation file's content; ValueError naming the problem if it would not load."""
    result = {"factor": factor, "meta": dict(meta), "rows": list(rows)}
    problems = ablation_problems(result)
    if problems:
        raise ValueError("; ".join(problems))
    return result


def ablation_problems(raw: Any) -> list[str]:
    """What keeps ``raw`` from being an ablation file (empty when it is one).

    Files from before ``meta`` carried the machine are accepted: the page then says less.
    """
    if not isinstance(raw, dict):
        return ["an ablation file is a JSON object with factor, meta and rows"]
    problems = []
    if raw.get("factor") not in ABLATION_FACTORS:
        problems.append(f"factor must be one of {', '.join(ABLATION_FACTORS)}, got {raw.get('factor')!r}")
    if not isinstance(raw.get("meta", {}), dict):
        problems.append("meta must be an object")
    rows = raw.get("rows")
    if not isinstance(rows, list) or not rows:
        problems.append("rows must be a non-empty list")
        return problems
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "value" not in row:
            problems.append(f"rows[{i}] must be an object with a value")
            continue
        for key in ("recon_loss", "linprobe_acc", "train_loss"):
            value = row.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                problems.append(f"rows[{i}].{key} must be a number or null, got {value!r}")
    return problems
