"""Run folders (written by the trainer, read by the pages, the job API and the worker) and the
benchmark results written by ``mae bench``/``mae ablate``.

Layout of a run folder, defined once by :class:`RunFolder`::

    <run>/config.json                 resolved config (JSON object)
    <run>/metrics.jsonl               one JSON object per logged step, steps increasing
    <run>/snapshots/step_XXXXXXXX.png four-panel reconstructions of a fixed batch
    <run>/checkpoints/ckpt_XXXXXXXX.pt resumable training state (``mae_core.train.state``)
    <run>/checkpoints/latest          the file name of the newest complete checkpoint
    <run>/summary.json                written when the run ends (completed, stopped, interrupted)
    <run>/model.safetensors (+ .json) the exported model, when the schedule completed
    <run>/worker.log                  the job's log, when a ``mae worker`` ran it

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
from typing import Any, BinaryIO, Callable, Iterator

from .io_utils import write_atomic, write_json_atomic

from .defaults import data_dir

log = logging.getLogger(__name__)

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SNAPSHOT_PATTERN = re.compile(r"^step_(\d{1,12})\.png$")
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
SNAPSHOT_DIR = "snapshots"
CHECKPOINT_DIR = "checkpoints"
EXPORT_FILE = "model.safetensors"
LOG_FILE = "worker.log"
TAIL_BLOCK = 64 * 1024  # bytes read per step backwards through metrics.jsonl
CURVE_POINTS = 2000  # rows a page curve keeps at most (about)

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


Fence = Callable[[], None]


def _no_fence() -> None:
    return None


class RunFolder:
    """One run folder: its file names, and every write and read of its files.

    The trainer writes through it and the web pages, the job API and the worker read through it,
    so the layout above is defined once. ``fence`` is called before every write: a job runner
    passes one that raises when its lease on the job was lost, so a stalled worker that wakes up
    after another took the job over writes nothing more.

    Args:
        path: the run folder (need not exist yet).
        fence: a callable run before each write; it raises to refuse the write.
    """

    def __init__(self, path: str | Path, fence: Fence | None = None) -> None:
        self.path = Path(path)
        self.fence = fence or _no_fence
        self.last_read_bytes = 0  # bytes of metrics.jsonl the last metrics read took

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def snapshots_dir(self) -> Path:
        return self.path / SNAPSHOT_DIR

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def export_path(self) -> Path:
        return self.path / EXPORT_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    def snapshot_path(self, step: int) -> Path:
        return self.snapshots_dir / f"step_{step:08d}.png"

    # ------------------------------------------------------------------ writes (fenced)
    def create(self) -> None:
        self.fence()
        self.path.mkdir(parents=True, exist_ok=True)

    def write_config(self, config: dict[str, Any]) -> None:
        self.fence()
        write_json_atomic(self.config_path, config)

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.fence()
        write_json_atomic(self.summary_path, summary)

    def append_metrics(self, record: dict[str, Any]) -> None:
        """One metrics line; NaN is written as the JSON extension ``NaN`` the reader maps to None."""
        self.fence()
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_metrics(self, after_step: int) -> None:
        """Keep the metrics lines up to ``after_step`` (a resumed run drops a killed run's tail).

        Lines the reader cannot use (not JSON, not an object, a step that is not an integer,
        undecodable bytes) are dropped too, with the same rule the pages use.
        """
        if not self.metrics_path.is_file():
            return
        kept = []
        with open(self.metrics_path, "rb") as f:
            for raw in f:
                line = raw.decode("utf-8", errors="replace")
                row = parse_metrics_line(line)
                if row is not None and row["step"] <= after_step:
                    kept.append(line.rstrip("\r\n") + "\n")
        self.fence()
        write_atomic(self.metrics_path, lambda tmp: tmp.write_text("".join(kept), encoding="utf-8"))

    def write_snapshot(self, step: int, image: Any) -> Path:
        """Save a PIL image as ``snapshots/step_<step>.png`` (atomically)."""
        self.fence()
        path = self.snapshot_path(step)
        write_atomic(path, lambda tmp: image.save(tmp, format="PNG"))
        return path

    def save_checkpoint(self, step: int, state: dict[str, Any], keep_last: int) -> Path:
        """Write ``checkpoints/ckpt_<step>.pt``, point ``latest`` at it, prune old ones."""
        from .train.state import save_training_state  # torch stays out of the readers' imports

        return save_training_state(self.checkpoints_dir, step, state, keep_last, fence=self.fence)

    def export_model(self, model: Any, card: dict[str, Any]) -> Path:
        """The trained model as ``model.safetensors`` + its JSON card (``mae_core.checkpoint``)."""
        from .checkpoint import save_model

        self.fence()
        return save_model(model, self.export_path, card)

    def latest_checkpoint(self) -> Path | None:
        from .train.state import latest_checkpoint

        return latest_checkpoint(self.checkpoints_dir) if self.checkpoints_dir.exists() else None

    # ------------------------------------------------------------------ reads (tolerant)
    def read_config(self) -> dict[str, Any] | None:
        return _read_json_object(self.config_path)

    def read_summary(self) -> dict[str, Any] | None:
        return _read_json_object(self.summary_path)

    def read_metrics(self, since_step: int | None = None) -> list[dict[str, Any]]:
        """Usable metrics lines in file order (only ``step > since_step`` when given).

        With ``since_step`` only the file's tail is read: blocks are read backwards from the
        end until one holds a line at or before ``since_step``. The trainer keeps steps
        increasing through the file (a resume first drops the lines past its checkpoint, and
        fenced writers never append behind a new owner), which is what makes the tail enough.
        """
        self.last_read_bytes = 0
        if since_step is None:
            return list(self._iter_metrics())
        try:
            with open(self.metrics_path, "rb") as f:
                data = self._read_tail(f, since_step)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return []
        rows = []
        for raw in data.split(b"\n"):
            row = parse_metrics_line(raw.decode("utf-8", errors="replace"))
            if row is not None and row["step"] > since_step:
                rows.append(row)
        return rows

    def _read_tail(self, f: BinaryIO, since_step: int) -> bytes:
        """The file from the first complete line of the block that holds a line at or before
        ``since_step`` (or the whole file); blocks are read backwards from the end."""
        end = f.seek(0, os.SEEK_END)
        data, checked = b"", 0  # checked: bytes at the end of data whose lines were looked at
        while end > 0:
            start = max(0, end - TAIL_BLOCK)
            f.seek(start)
            block = f.read(end - start)
            self.last_read_bytes += len(block)
            data, end = block + data, start
            head = 0 if start == 0 else data.find(b"\n") + 1  # the piece before may be cut
            if start > 0 and head == 0:
                continue
            region = data[head:len(data) - checked]
            for line in region.split(b"\n"):
                row = parse_metrics_line(line.decode("utf-8", errors="replace"))
                if row is not None and row["step"] <= since_step:
                    return data[head:]
            checked = len(data) - head
        return data

    def last_metrics(self) -> dict[str, Any] | None:
        """The last usable metrics line, reading only the file's tail."""
        try:
            with open(self.metrics_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
                tail = f.read().decode("utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        for line in reversed(tail.splitlines()):
            row = parse_metrics_line(line)
            if row is not None:
                return row
        return None

    def curve(self, max_points: int = CURVE_POINTS, key: str = "loss"
              ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The metrics for a page: all rows, or a downsampled curve when there are more.

        Rows are streamed into buckets of equal step width; each bucket keeps its first and
        last row and its rows of least and greatest ``key``, so spikes and the ends survive.
        Returns the rows and, when rows were dropped, a note saying how (else None).
        """
        try:
            stat = self.metrics_path.stat()
        except OSError:
            return [], None
        key_ = (str(self.metrics_path), stat.st_size, stat.st_mtime_ns, max_points, key)
        if key_ not in _CURVES:  # a finished run's page loads again at once
            while len(_CURVES) >= 8:
                _CURVES.pop(next(iter(_CURVES)))
            _CURVES[key_] = self._curve(max_points, key)
        rows, note = _CURVES[key_]
        return list(rows), note

    def _curve(self, max_points: int, key: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        first, last = self._first_metrics(), self.last_metrics()
        if first is None or last is None:
            return self.read_metrics(), None
        buckets = max(1, max_points // 4)
        width = max(1, math.ceil((last["step"] - first["step"] + 1) / buckets))
        kept: dict[int, dict[str, dict[str, Any]]] = {}
        total = 0
        for row in self._iter_metrics():
            total += 1
            slot = kept.setdefault((row["step"] - first["step"]) // width, {})
            _keep_extremes(slot, row, key)
        rows = sorted({id(r): r for s in kept.values() for r in s.values()}.values(),
                      key=lambda r: r["step"])
        if len(rows) == total:
            return rows, None
        return rows, {"rows": total, "kept": len(rows), "bucket_steps": width,
                      "rule": f"first, last, min and max {key} of every {width} steps"}

    def poll_metrics(self, since_step: int | None = None, max_points: int = CURVE_POINTS
                     ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """What a metrics poll answers: the lines after ``since_step`` (the tail only), or
        without it the whole curve, downsampled to about ``max_points`` (0 = every line);
        with the downsampling note (None when every line is there)."""
        if since_step is not None or max_points == 0:
            return self.read_metrics(since_step), None
        return self.curve(max_points)

    def _iter_metrics(self) -> Iterator[dict[str, Any]]:
        try:
            with open(self.metrics_path, "rb") as f:
                for raw in f:
                    self.last_read_bytes += len(raw)
                    row = parse_metrics_line(raw.decode("utf-8", errors="replace"))
                    if row is not None:
                        yield row
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return

    def _first_metrics(self) -> dict[str, Any] | None:
        self.last_read_bytes = 0
        for row in self._iter_metrics():
            return row
        return None

    def snapshots(self) -> list[Snapshot]:
        """Snapshot images sorted by step (files not named ``step_<digits>.png`` ignored)."""
        try:
            entries = list(self.snapshots_dir.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        snaps = []
        for entry in entries:
            match = SNAPSHOT_PATTERN.match(entry.name)
            if match and entry.is_file():
                snaps.append(Snapshot(step=int(match.group(1)), path=entry))
        snaps.sort(key=lambda s: s.step)
        return snaps

    def newest_mtime(self) -> float:
        newest = 0.0
        for path in (self.config_path, self.metrics_path, self.summary_path, self.snapshots_dir):
            try:
                newest = max(newest, path.stat().st_mtime)
            except OSError:
                pass
        if newest == 0.0:
            try:
                newest = self.path.stat().st_mtime
            except OSError:
                pass
        return newest


# (metrics file, size, mtime, max_points, key) -> curve; a few recent curves, oldest dropped first
_CURVES: dict[tuple[Any, ...], tuple[list[dict[str, Any]], dict[str, Any] | None]] = {}


def _keep_extremes(slot: dict[str, dict[str, Any]], row: dict[str, Any], key: str) -> None:
    slot.setdefault("first", row)
    slot["last"] = row
    value = row.get(key)
    if value is None:
        return
    if slot.get("min") is None or value < slot["min"][key]:
        slot["min"] = row
    if slot.get("max") is None or value > slot["max"][key]:
        slot["max"] = row


def read_metrics(run_dir: str | Path, since_step: int | None = None) -> list[dict[str, Any]]:
    """The run's usable metrics lines in file order (see :meth:`RunFolder.read_metrics`).

    Args:
        run_dir: the run folder (holding ``metrics.jsonl``).
        since_step: when given, only lines with ``step > since_step`` (for incremental polling);
            only the file's tail is read.

    Returns:
        A list of dicts, each with an int ``step`` and whichever numeric fields the line had.
        Empty if the file does not exist yet.
    """
    return RunFolder(run_dir).read_metrics(since_step)


def list_snapshots(run_dir: str | Path) -> list[Snapshot]:
    """Snapshot images of a run, sorted by step (files not named ``step_<digits>.png`` ignored)."""
    return RunFolder(run_dir).snapshots()


def read_run(run_dir: str | Path, now: float | None = None) -> RunInfo | None:
    """Describe one run folder, or ``None`` if it is not a run (no config and no metrics)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not is_valid_run_id(run_dir.name):
        return None
    folder = RunFolder(run_dir)
    if not (folder.config_path.is_file() or folder.metrics_path.is_file()):
        return None
    summary = folder.read_summary()
    updated = folder.newest_mtime()
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
        config=folder.read_config(),
        summary=summary,
        status=status,
        updated_at=updated,
        last_metrics=folder.last_metrics(),
        num_snapshots=len(folder.snapshots()),
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
