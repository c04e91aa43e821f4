"""Reading training runs and benchmark results written by the trainer and ``mae bench``/``mae ablate``.

Layout of a runs folder (written by the trainer)::

    RUNS/<run-id>/config.json                 resolved config (JSON object)
    RUNS/<run-id>/metrics.jsonl               one JSON object per logged step
    RUNS/<run-id>/snapshots/step_XXXXXXXX.png four-panel reconstructions of a fixed batch
    RUNS/<run-id>/summary.json                optional, written when the run finishes

The reader is tolerant because runs are read while they are being written: a metrics line may
lack fields or be cut off at the end of the file, a config may not exist yet. Bad lines are
skipped, never raised. Run ids are checked against a strict pattern and against the listing,
so callers can map a user-supplied id to a folder without ever joining a user path.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .defaults import data_dir

log = logging.getLogger(__name__)

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SNAPSHOT_PATTERN = re.compile(r"^step_(\d{1,12})\.png$")
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
SNAPSHOT_DIR = "snapshots"

# Fields the trainer writes on each metrics line, with their types.
METRIC_FIELDS: dict[str, type] = {
    "step": int,
    "epoch": float,
    "lr": float,
    "loss": float,
    "images_per_s": float,
    "data_wait_frac": float,
    "elapsed_s": float,
}

# A run without summary.json whose files changed within this many seconds counts as running.
ACTIVE_WINDOW_S = 120.0


@dataclass(frozen=True)
class Snapshot:
    """A reconstruction snapshot saved at ``step``."""

    step: int
    path: Path


@dataclass(frozen=True)
class RunInfo:
    """What the listing knows about one run folder.

    Attributes:
        id: the folder name, checked against :data:`RUN_ID_PATTERN`.
        path: the run folder.
        config: the parsed ``config.json`` (``None`` if absent or unreadable).
        summary: the parsed ``summary.json`` (``None`` until the run finishes).
        status: ``"finished"`` (summary written), ``"running"`` (files changed within
            :data:`ACTIVE_WINDOW_S`) or ``"stopped"``.
        updated_at: newest modification time of the run's files (Unix seconds).
        last_metrics: the last valid metrics line, if any.
        num_snapshots: how many snapshot images exist.
    """

    id: str
    path: Path
    config: dict[str, Any] | None
    summary: dict[str, Any] | None
    status: str
    updated_at: float
    last_metrics: dict[str, Any] | None = None
    num_snapshots: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (without the filesystem path)."""
        return {
            "id": self.id,
            "status": self.status,
            "updated_at": self.updated_at,
            "config": self.config,
            "summary": self.summary,
            "last_metrics": self.last_metrics,
            "num_snapshots": self.num_snapshots,
        }


def default_runs_dir() -> Path:
    """``$MAE_RUNS_DIR`` or the data folder's ``runs/`` (``var/runs``, where jobs train)."""
    return Path(os.environ.get("MAE_RUNS_DIR") or data_dir() / "runs")


def default_bench_dir() -> Path:
    """``$MAE_BENCH_DIR`` or the data folder's ``bench-results/`` (``var/bench-results``).

    ``mae bench train`` writes ``bench_train.json`` there and ``mae ablate`` writes
    ``ablations/<factor>.json``.
    """
    return Path(os.environ.get("MAE_BENCH_DIR") or data_dir() / "bench-results")


def is_valid_run_id(run_id: str) -> bool:
    """True when ``run_id`` is a plain folder name the reader accepts."""
    return bool(RUN_ID_PATTERN.match(run_id)) and run_id not in {".", ".."}


def _read_json_object(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.debug("skipping unreadable %s: %s", path, exc)
        return None
    return obj if isinstance(obj, dict) else None


def _clean_number(value: Any, kind: type) -> int | float | None:
    """A finite number of the declared kind, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return None
    if kind is int:
        return int(value) if float(value).is_integer() else None
    return float(value)


def parse_metrics_line(line: str) -> dict[str, Any] | None:
    """One metrics line as a dict, or ``None`` if it is not usable.

    A usable line is a JSON object with an integer ``step`` >= 0. Known fields are kept when they
    are finite numbers (a diverged run's NaN loss becomes ``None``); other numeric fields the
    trainer may add are passed through the same way; anything else is dropped.
    """
    line = line.strip()
    if not line:
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    step = _clean_number(obj.get("step"), int)
    if step is None or step < 0:
        return None
    out: dict[str, Any] = {"step": step}
    for key, value in obj.items():
        if key == "step" or not isinstance(key, str):
            continue
        kind = METRIC_FIELDS.get(key, float)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = _clean_number(value, kind)
    return out


def read_metrics(run_dir: str | Path, since_step: int | None = None) -> list[dict[str, Any]]:
    """The run's metrics lines in file order, skipping bad or truncated lines.

    Args:
        run_dir: the run folder (holding ``metrics.jsonl``).
        since_step: when given, only lines with ``step > since_step`` (for incremental polling).

    Returns:
        A list of dicts, each with an int ``step`` and whichever numeric fields the line had.
        Empty if the file does not exist yet.
    """
    path = Path(run_dir) / METRICS_FILE
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    rows = []
    for line in lines:
        row = parse_metrics_line(line)
        if row is None:
            continue
        if since_step is not None and row["step"] <= since_step:
            continue
        rows.append(row)
    return rows


def list_snapshots(run_dir: str | Path) -> list[Snapshot]:
    """Snapshot images of a run, sorted by step (files not named ``step_<digits>.png`` ignored)."""
    folder = Path(run_dir) / SNAPSHOT_DIR
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    snaps = []
    for entry in entries:
        match = SNAPSHOT_PATTERN.match(entry.name)
        if match and entry.is_file():
            snaps.append(Snapshot(step=int(match.group(1)), path=entry))
    snaps.sort(key=lambda s: s.step)
    return snaps


def _last_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The last valid metrics line, reading only the file's tail."""
    path = run_dir / METRICS_FILE
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 16384))
            tail = f.read().decode("utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    for line in reversed(tail.splitlines()):
        row = parse_metrics_line(line)
        if row is not None:
            return row
    return None


def _newest_mtime(run_dir: Path) -> float:
    newest = 0.0
    for name in (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, SNAPSHOT_DIR):
        try:
            newest = max(newest, (run_dir / name).stat().st_mtime)
        except OSError:
            pass
    if newest == 0.0:
        try:
            newest = run_dir.stat().st_mtime
        except OSError:
            pass
    return newest


def read_run(run_dir: str | Path, now: float | None = None) -> RunInfo | None:
    """Describe one run folder, or ``None`` if it is not a run (no config and no metrics)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not is_valid_run_id(run_dir.name):
        return None
    has_config = (run_dir / CONFIG_FILE).is_file()
    has_metrics = (run_dir / METRICS_FILE).is_file()
    if not (has_config or has_metrics):
        return None
    summary = _read_json_object(run_dir / SUMMARY_FILE)
    updated = _newest_mtime(run_dir)
    now = time.time() if now is None else now
    if summary is not None:
        status = "finished"
    elif now - updated <= ACTIVE_WINDOW_S:
        status = "running"
    else:
        status = "stopped"
    return RunInfo(
        id=run_dir.name,
        path=run_dir,
        config=_read_json_object(run_dir / CONFIG_FILE),
        summary=summary,
        status=status,
        updated_at=updated,
        last_metrics=_last_metrics(run_dir),
        num_snapshots=len(list_snapshots(run_dir)),
    )


def list_runs(root: str | Path) -> list[RunInfo]:
    """All runs under ``root``, newest first. A missing root gives an empty list."""
    root = Path(root)
    try:
        children = list(root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    now = time.time()
    runs = [info for child in children if (info := read_run(child, now=now)) is not None]
    runs.sort(key=lambda r: (r.updated_at, r.id), reverse=True)
    return runs


def find_run(root: str | Path, run_id: str) -> RunInfo | None:
    """The run called ``run_id`` from the listing of ``root``; ``None`` if there is none.

    The id is validated and matched against the folder listing, so the returned path is always
    a direct child of ``root``.
    """
    if not is_valid_run_id(run_id):
        return None
    root = Path(root)
    try:
        names = {child.name for child in root.iterdir()}
    except (FileNotFoundError, NotADirectoryError):
        return None
    if run_id not in names:
        return None
    return read_run(root / run_id)


def read_json_result(path: str | Path) -> dict[str, Any] | None:
    """A benchmark/ablation result file as a dict; ``None`` when it does not exist.

    Raises:
        ValueError: the file exists but is not a JSON object.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return obj
