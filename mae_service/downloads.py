"""Checkpoint downloads run by the server in the background, visible to every page and process.

A download's state is a small JSON file (``DATA_DIR/downloads/<id>.json``) rewritten as it goes,
so a reloaded page (or another server process) sees the same progress. Files arrive in
``DATA_DIR/downloads/<id>/``; a finished file is loaded safely (``mae_core.load_model``, which
never unpickles code), converted to the project's safetensors + card in the data folder's
``checkpoints/`` (which the web app lists, so the model appears with no restart), and the raw
file is removed. An interrupted transfer keeps its ``.partial`` file: starting the download
again resumes it with an HTTP Range request.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from mae_core import load_model, save_model
from mae_core.checkpoint.catalog import HUGGINGFACE, CatalogEntry, load_catalog
from mae_core.checkpoint.download import DownloadCancelled, download
from mae_core.errors import DownloadError, MAEError, UnknownModelError
from mae_core.io_utils import write_json_atomic

log = logging.getLogger(__name__)

QUEUED, DOWNLOADING, CONVERTING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "downloading", "converting", "done", "failed", "cancelled", "interrupted")
ACTIVE = frozenset({QUEUED, DOWNLOADING, CONVERTING})
WRITE_EVERY_S = 0.5  # progress files are rewritten at most this often


class DownloadStateError(MAEError):
    """The action does not fit the download's state (already running, not running, present)."""


@dataclass
class DownloadState:
    """What a page shows about one download."""

    id: str
    state: str
    bytes_done: int = 0
    bytes_total: int | None = None
    rate_bps: float | None = None
    eta_s: float | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def progress(self) -> float | None:
        return self.bytes_done / self.bytes_total if self.bytes_total else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "progress": self.progress}


class DownloadManager:
    """Starts, tracks and cancels downloads of catalog entries into ``data_dir``.

    Args:
        data_dir: the shared data folder (``downloads/`` for transfers and state,
            ``checkpoints/`` for the converted models).
        catalog: id → entry; default ``load_catalog()`` (official, Hugging Face, and
            ``$MAE_CHECKPOINT_CATALOG``).
        base_url: mirror for relative URLs (default ``$MAE_CHECKPOINT_MIRROR`` or the official host).
    """

    def __init__(self, data_dir: Path, catalog: dict[str, CatalogEntry] | None = None,
                 base_url: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(data_dir) / "downloads"
        self.checkpoints = Path(data_dir) / "checkpoints"
        self.catalog = catalog if catalog is not None else load_catalog()
        self.base_url = base_url
        self.clock = clock
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._stop: dict[str, threading.Event] = {}

    # ------------------------------------------------------------------ reading
    def entry(self, entry_id: str) -> CatalogEntry:
        try:
            return self.catalog[entry_id]
        except KeyError:
            raise UnknownModelError(f"no downloadable checkpoint {entry_id!r}; GET /api/checkpoints "
                                    "lists the catalog") from None

    def status(self, entry_id: str) -> DownloadState | None:
        """The last recorded state; a transfer no live thread of this process runs any more
        (the server restarted mid-download) reads as ``interrupted``."""
        path = self._state_path(entry_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = DownloadState(**{k: v for k, v in data.items() if k != "progress"})
        except (OSError, ValueError, TypeError):
            return None
        with self._lock:
            alive = entry_id in self._threads and self._threads[entry_id].is_alive()
        if state.state in ACTIVE and not alive:
            state.state = INTERRUPTED
            state.error = state.error or "the server stopped during the download; start it again to resume"
        return state

    # ------------------------------------------------------------------ actions
    def start(self, entry_id: str) -> DownloadState:
        """Begin (or resume) downloading ``entry_id`` in a background thread."""
        entry = self.entry(entry_id)
        if (self.checkpoints / f"{entry.name}.safetensors").exists():
            raise DownloadStateError(f"{entry.name} is already downloaded; delete it first to "
                                     "download it again")
        with self._lock:
            running = self._threads.get(entry_id)
            if running is not None and running.is_alive():
                raise DownloadStateError(f"{entry.name} is already downloading")
            stop = threading.Event()
            state = DownloadState(entry.name, QUEUED, started=self.clock(), updated=self.clock())
            self._write(state)
            thread = threading.Thread(target=self._run, args=(entry, state, stop),
                                      name=f"download-{entry.name}", daemon=True)
            self._threads[entry_id], self._stop[entry_id] = thread, stop
            thread.start()
        return state

    def cancel(self, entry_id: str) -> DownloadState:
        """Stop a running download; its partial file stays for a later resume."""
        self.entry(entry_id)
        with self._lock:
            stop, thread = self._stop.get(entry_id), self._threads.get(entry_id)
        if stop is None or thread is None or not thread.is_alive():
            raise DownloadStateError(f"{entry_id} is not downloading")
        stop.set()
        thread.join(timeout=30)
        return self.status(entry_id) or DownloadState(entry_id, CANCELLED)

    def discard(self, entry_id: str) -> None:
        """Forget a download's state and partial files (the model itself is deleted elsewhere)."""
        with self._lock:
            thread = self._threads.get(entry_id)
        if thread is not None and thread.is_alive():
            raise DownloadStateError(f"{entry_id} is downloading; cancel it first")
        shutil.rmtree(self.folder / entry_id, ignore_errors=True)
        self._state_path(entry_id).unlink(missing_ok=True)

    def wait(self, entry_id: str, timeout: float | None = None) -> DownloadState | None:
        with self._lock:
            thread = self._threads.get(entry_id)
        if thread is not None:
            thread.join(timeout)
        return self.status(entry_id)

    # ------------------------------------------------------------------ the transfer
    def _run(self, entry: CatalogEntry, state: DownloadState, stop: threading.Event) -> None:
        meter = _Meter(state, self.clock, self._write)
        try:
            state.state = DOWNLOADING
            self._write(state)
            staged = self._fetch(entry, meter.update, stop.is_set)
            state.state = CONVERTING
            self._write(state)
            self._publish(entry, staged)
            shutil.rmtree(self.folder / entry.name, ignore_errors=True)
            state.state, state.eta_s = DONE, 0.0
            log.info("downloaded %s", entry.name)
        except DownloadCancelled as exc:
            state.state, state.error = CANCELLED, str(exc)
        except MAEError as exc:
            state.state, state.error = FAILED, str(exc)
            log.warning("download of %s failed: %s", entry.name, exc)
        except Exception as exc:  # noqa: BLE001 - a failed download is reported, never fatal
            state.state, state.error = FAILED, f"{type(exc).__name__}: {exc}"
            log.exception("download of %s failed", entry.name)
        state.updated = self.clock()
        self._write(state)

    def _fetch(self, entry: CatalogEntry, on_progress: Callable[[int, int | None], None],
               should_stop: Callable[[], bool]) -> Path:
        staging = self.folder / entry.name
        staging.mkdir(parents=True, exist_ok=True)
        if entry.source == HUGGINGFACE:
            return _fetch_huggingface(entry, staging, on_progress, should_stop)
        return download(entry.url(self.base_url), staging / entry.filename, entry.md5_prefix,
                        progress=False, on_progress=on_progress, should_stop=should_stop,
                        sha256=entry.sha256)

    def _publish(self, entry: CatalogEntry, staged: Path) -> Path:
        """Load the file safely, check it is what the catalog says, save ours + card."""
        model = load_model(staged)
        if entry.has_decoder and not model.has_decoder:
            raise DownloadError(f"{entry.name}: the file has no decoder although the catalog says "
                                "it has one; it was not published")
        card = {
            "source": {"catalog_id": entry.name, "url": entry.path, "layout": model.source_layout},
            "licence": entry.licence, "description": entry.description, "good_for": entry.good_for,
            "has_decoder": model.has_decoder,
        }
        return save_model(model, self.checkpoints / f"{entry.name}.safetensors", card)

    # ------------------------------------------------------------------ files
    def _state_path(self, entry_id: str) -> Path:
        return self.folder / f"{entry_id}.json"

    def _write(self, state: DownloadState) -> None:
        write_json_atomic(self._state_path(state.id), state.to_dict())


class _Meter:
    """Turns per-chunk byte counts into rate and ETA, writing the state at most every 0.5 s."""

    def __init__(self, state: DownloadState, clock: Callable[[], float],
                 write: Callable[[DownloadState], None]) -> None:
        self.state, self.clock, self.write = state, clock, write
        self.last_write = 0.0
        self.window: list[tuple[float, int]] = []

    def update(self, done: int, total: int | None) -> None:
        now = self.clock()
        self.window = [(t, b) for t, b in self.window if now - t <= 5.0] + [(now, done)]
        first_t, first_b = self.window[0]
        rate = (done - first_b) / (now - first_t) if now > first_t else None
        s = self.state
        s.bytes_done, s.bytes_total, s.rate_bps, s.updated = done, total, rate, now
        s.eta_s = (total - done) / rate if rate and total else None
        if now - self.last_write >= WRITE_EVERY_S or (total is not None and done >= total):
            self.last_write = now
            self.write(s)


def _fetch_huggingface(entry: CatalogEntry, staging: Path,
                       on_progress: Callable[[int, int | None], None],
                       should_stop: Callable[[], bool]) -> Path:
    """config.json + model.safetensors of a Hub repository through huggingface_hub (its cache,
    resume and HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE handling), reporting bytes as they come."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise DownloadError("Hugging Face downloads need huggingface_hub: pip install huggingface_hub") from None
    from tqdm.auto import tqdm

    class _Progress(tqdm):  # huggingface_hub reports bytes through a tqdm class
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.done = int(kwargs.get("initial") or 0)

        def update(self, n: float | None = 1) -> bool | None:
            self.done += int(n or 0)
            on_progress(self.done, int(self.total) if self.total else None)
            if should_stop():
                raise DownloadCancelled(f"download of {entry.path} was cancelled; starting it "
                                        "again resumes from the Hugging Face cache")
            return super().update(n)

    try:
        hf_hub_download(entry.path, "config.json", local_dir=staging, tqdm_class=_Progress)
        return Path(hf_hub_download(entry.path, "model.safetensors", local_dir=staging,
                                    tqdm_class=_Progress))
    except DownloadCancelled:
        raise
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise DownloadError(f"download of {entry.path} from the Hugging Face Hub failed: {exc}") from None
