"""Result files other than run folders: what a benchmark or ablation JSON file holds, once.

Writers (``mae bench``, ``mae ablate``, ``mae_tools.serve_bench``) build their files with these
functions (``bench_result``/``check_bench``, ``ablation_result``) and readers (the Analysis page)
check what they load against the same definitions (``bench_problems``, ``ablation_problems``). Every file is
``{"meta": {...}, "rows": [...]}`` plus its own keys; ``meta`` always says when, on what machine
and with which torch it was made (``machine_meta``).
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import torch

from .io_utils import write_json_atomic

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


# -- benchmark files ---------------------------------------------------------------------------

class Key(NamedTuple):
    """One key of a result row: its type (``int``/``num``/``str``/``bool`` or a tuple of the
    allowed values), whether it must be present, and a lower bound (``gt``: strictly above)."""

    name: str
    kind: str | tuple[str, ...]
    required: bool = True
    low: float | None = None
    gt: bool = False


class BenchFormat(NamedTuple):
    """A benchmark file: the command writing it, its list key and the keys of one entry."""

    command: str
    rows_key: str
    row: tuple[Key, ...]
    rows_as: str = "list"  # "list" of rows, or "dict" of named rows (serve latency)
    top: tuple[Key, ...] = ()  # keys beside meta and the rows


_LATENCY = (Key("p50_ms", "num", low=0), Key("p90_ms", "num", False, 0),
            Key("mean_ms", "num", False, 0), Key("min_ms", "num", False, 0), Key("n", "int", False, 0))
THROUGHPUT_ROW = (Key("batching", "bool"), Key("clients", "int", low=1),
                  Key("requests", "int", False, 0), Key("images_per_s", "num", low=0),
                  Key("mean_batch_size", "num", False, 0), Key("max_batch_size", "int", False, 0),
                  Key("speedup_vs_no_batching", "num", False, 0))

BENCH_FORMATS: dict[str, BenchFormat] = {
    "train": BenchFormat("mae bench train", "rows", (
        Key("encoder", ("visible-only", "mask-tokens")), Key("decoder_depth", "int", low=0),
        Key("step_s", "num", low=0, gt=True), Key("images_per_s", "num", low=0),
        Key("speedup", "num", False, 0, True))),
    "train_mfu": BenchFormat("mae bench train --mfu", "rows", (
        Key("model", "str"), Key("mode", ("eager", "compiled")), Key("batch_size", "int", low=1),
        Key("step_s", "num", low=0, gt=True), Key("images_per_s", "num", low=0),
        Key("mfu", "num", low=0))),
    "infer": BenchFormat("mae bench infer", "rows", (
        Key("model", "str"), Key("batch_size", "int", low=1),
        Key("ms_per_batch", "num", low=0, gt=True), Key("images_per_s", "num", low=0),
        Key("gflops_per_s", "num", False, 0), Key("fraction_of_matmul", "num", False, 0))),
    "peer": BenchFormat("mae bench peer", "rows", (
        Key("model", "str"), Key("mode", ("inference", "train")), Key("batch_size", "int", low=1),
        Key("ours_images_per_s", "num", low=0), Key("peer_images_per_s", "num", low=0),
        Key("speedup", "num", False, 0, True), Key("max_abs_diff", "num", False, 0))),
    "serve_latency": BenchFormat("python -m mae_tools.serve_bench", "latency", _LATENCY, "dict",
                                 (Key("server_peak_rss_mb", "num", False, 0),)),
}


_KIND_NAMES = {"int": "an integer", "num": "a number", "str": "a string", "bool": "true or false"}


def _value_problem(key: Key, value: Any) -> str | None:
    if value is None:
        return "is required" if key.required else None
    if isinstance(key.kind, tuple):
        return None if value in key.kind else f"must be one of {', '.join(key.kind)}, got {value!r}"
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    ok = {"int": number and isinstance(value, int), "num": number, "str": isinstance(value, str),
          "bool": isinstance(value, bool)}[key.kind]
    if not ok:
        return f"must be {_KIND_NAMES[key.kind]}, got {value!r}"
    if key.low is not None and (value <= key.low if key.gt else value < key.low):
        return f"must be {'>' if key.gt else '>='} {key.low:g}, got {value!r}"
    return None


def _row_problems(where: str, row: Any, keys: Sequence[Key]) -> list[str]:
    if not isinstance(row, Mapping):
        return [f"{where} must be an object"]
    return [f"{where}.{key.name} {problem}" for key in keys
            if (problem := _value_problem(key, row.get(key.name))) is not None]


def bench_problems(kind: str, raw: Any) -> list[str]:
    """What keeps ``raw`` from being a ``kind`` benchmark file (``BENCH_FORMATS``); empty if it is one.

    Files may carry more keys than these (they are kept); the keys named here must be right.
    """
    spec = BENCH_FORMATS[kind]
    if not isinstance(raw, Mapping):
        return [f"a {spec.command} file is a JSON object"]
    problems = [] if isinstance(raw.get("meta", {}), Mapping) else ["meta must be an object"]
    problems += [f"{key.name} {problem}" for key in spec.top
                 if (problem := _value_problem(key, raw.get(key.name))) is not None]
    rows = raw.get(spec.rows_key)
    if spec.rows_as == "dict":
        if not isinstance(rows, Mapping) or not rows:
            return problems + [f"{spec.rows_key} must be a non-empty object"]
        for name, row in rows.items():
            problems += _row_problems(f"{spec.rows_key}.{name}", row, spec.row)
        throughput = raw.get("throughput") or []
        if not isinstance(throughput, list):
            return problems + ["throughput must be a list"]
        for i, row in enumerate(throughput):
            problems += _row_problems(f"throughput[{i}]", row, THROUGHPUT_ROW)
        return problems
    if not isinstance(rows, list) or not rows:
        return problems + [f"{spec.rows_key} must be a non-empty list"]
    for i, row in enumerate(rows):
        problems += _row_problems(f"{spec.rows_key}[{i}]", row, spec.row)
    return problems


def check_bench(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` itself once it is a valid ``kind`` file; ValueError naming the problems otherwise."""
    problems = bench_problems(kind, result)
    if problems:
        raise ValueError(f"not a valid {BENCH_FORMATS[kind].command} file: " + "; ".join(problems))
    return result


def bench_result(kind: str, meta: Mapping[str, Any], rows: Sequence[dict[str, Any]],
                 **extra: Any) -> dict[str, Any]:
    """A ``{"meta", "rows", **extra}`` benchmark file's content, checked against its format."""
    return check_bench(kind, {"meta": dict(meta), "rows": list(rows), **extra})


def write_result(path: str | Path, result: dict[str, Any], kind: str | None = None) -> Path:
    """Write a result file atomically (checked first as a ``kind`` benchmark file when given)."""
    if kind is not None:
        check_bench(kind, result)
    path = Path(path)
    write_json_atomic(path, result)
    return path
