"""Checkpoints the service offers: listed from one folder, selected by id, loaded on first use.

Requests name a checkpoint by its id (the file stem, as ``mae_core.list_checkpoints`` reports it),
never by a path, so nothing outside the configured folder can be opened; a file or card that is a
symlink out of the folder is listed as broken and never read. Loaded reconstructors
live in a small LRU cache; the default checkpoint is loaded at start-up and never evicted. A
weights file replaced on disk (same id, new mtime) is reloaded on next use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mae_core import CheckpointInfo, Reconstructor, list_checkpoints
from mae_core.checkpoint.io import WEIGHT_SUFFIXES
from mae_core.errors import CheckpointError, DecoderMissingError, UnknownModelError

log = logging.getLogger(__name__)

# ViT sizes by (width, depth), as the ViT / MAE papers name them.
VIT_NAMES = {(192, 12): "ViT-Ti", (384, 12): "ViT-S", (768, 12): "ViT-B", (1024, 24): "ViT-L",
             (1280, 32): "ViT-H"}


def describe_card(card: dict[str, Any]) -> dict[str, Any]:
    """Short human-readable facts from a checkpoint card: architecture, training data, norm-pix."""
    cfg = card.get("model_config") or {}
    arch = "unknown architecture"
    if cfg:
        width, depth = cfg.get("embed_dim"), cfg.get("depth")
        patch = cfg.get("patch_size")
        size = cfg.get("img_size") or []
        size_text = f"{size[0]}×{size[1]}" if isinstance(size, (list, tuple)) and len(size) == 2 else str(size)
        name = VIT_NAMES.get((width, depth), "ViT")
        arch = (f"{name}/{patch} encoder ({width}-d, {depth} blocks, {cfg.get('num_heads')} heads), "
                f"decoder {cfg.get('decoder_embed_dim')}-d × {cfg.get('decoder_depth')} blocks, "
                f"{size_text} px")
    return {
        "architecture": arch,
        "training_data": _describe_data(card.get("data")),
        "training": _describe_training(card.get("training")),
        "norm_pix_loss": bool(card.get("norm_pix_loss", cfg.get("norm_pix_loss", False))),
        "image_size": cfg.get("img_size"),
        "patch_size": cfg.get("patch_size"),
    }


def _describe_data(data: Any) -> str:
    if not data:
        return "not recorded in the card"
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        for key in ("description", "name", "dataset", "source"):
            if data.get(key):
                text = str(data[key])
                count = data.get("num_images") or data.get("images") or data.get("size")
                return f"{text} ({count} images)" if isinstance(count, int) else text
    return str(data)[:200]


def _describe_training(training: Any) -> str:
    if not training:
        return "not recorded in the card"
    if isinstance(training, str):
        return training
    if isinstance(training, dict):
        parts = [f"{k.replace('_', ' ')}: {v}" for k, v in training.items()
                 if isinstance(v, (str, int, float, bool))][:6]
        return "; ".join(parts) or "recorded (see card)"
    return str(training)[:200]


@dataclass
class _Loaded:
    reconstructor: Reconstructor
    stamp: tuple[int, int]  # (mtime_ns, size) of the weights file when loaded


class ModelRegistry:
    """The checkpoint folder as the service sees it. Thread-safe.

    Args:
        folder: the checkpoint folder.
        default_id: id loaded at start-up and used when a request names no model.
        device: torch device for every loaded model (None: best available).
        cache_size: most loaded checkpoints kept (the default is kept in addition).
        extra_folders: more folders listed after ``folder`` (trained jobs publish there); an id
            already found in an earlier folder wins.
        max_tokens: most patches per image a served checkpoint may have (attention costs grow
            with their square: a 1024 px model costs ~7x a 224 px one per request); a checkpoint
            over it is refused with 422 instead of slowing everybody's requests.
    """

    def __init__(self, folder: Path, default_id: str, device: str | None = None, cache_size: int = 2,
                 extra_folders: Sequence[Path] = (), precision: str = "fast",
                 max_tokens: int = 1024) -> None:
        self.max_tokens = max_tokens
        self.folder = Path(folder)
        self.folders = [self.folder, *(Path(f) for f in extra_folders if Path(f) != self.folder)]
        self.default_id = default_id
        self.device = device or None
        self.precision = precision
        self.cache_size = cache_size
        self._lock = threading.RLock()
        self._cache: OrderedDict[str, _Loaded] = OrderedDict()
        self._listing: tuple[tuple, dict[str, CheckpointInfo]] | None = None
        self.default_state = "loading"
        self.default_message = f"loading the default checkpoint {default_id!r}"

    # ------------------------------------------------------------- listing
    def checkpoints(self) -> dict[str, CheckpointInfo]:
        """id → info for every weights file in the folder (one per id; .safetensors preferred)."""
        signature = self._signature()
        with self._lock:
            if self._listing is not None and self._listing[0] == signature:
                return self._listing[1]
        rank = {suffix: i for i, suffix in enumerate(WEIGHT_SUFFIXES)}
        by_id: dict[str, CheckpointInfo] = {}
        for folder in self.folders:
            in_folder: dict[str, CheckpointInfo] = {}
            for info in list_checkpoints(folder, confined=True):
                current = in_folder.get(info.id)
                if current is None or rank[info.path.suffix] < rank[current.path.suffix]:
                    in_folder[info.id] = info
            by_id.update({k: v for k, v in in_folder.items() if k not in by_id})
        with self._lock:
            self._listing = (signature, by_id)
        return by_id

    def _signature(self) -> tuple:
        entries = []
        for folder in self.folders:
            try:
                entries.extend(sorted(folder.iterdir()))
            except OSError:
                continue
        stamp = []
        for path in entries:
            try:
                st = path.stat()
            except OSError:
                continue
            stamp.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(stamp)

    def resolve(self, model_id: str | None) -> CheckpointInfo:
        """The usable checkpoint for ``model_id`` (None = the default), or a typed error."""
        wanted = model_id or self.default_id
        infos = self.checkpoints()
        info = infos.get(wanted)
        if info is None:
            available = ", ".join(i for i, v in infos.items() if v.can_reconstruct) or "none"
            if model_id:
                raise UnknownModelError(
                    f"no checkpoint with id {model_id!r} in the checkpoint folder; choose one of: "
                    f"{available} (GET /api/models lists them)"
                )
            raise UnknownModelError(
                f"the default checkpoint {wanted!r} is not present in the checkpoint folder; send "
                f"model=<id> with one of: {available}, or start the server with --default-model"
            )
        if info.error:
            raise CheckpointError(f"checkpoint {wanted!r} cannot be used: {info.error}")
        tokens = tokens_per_image(info.card)
        if tokens is not None and tokens > self.max_tokens:
            raise CheckpointError(
                f"checkpoint {wanted!r} works on {tokens} patches per image; this server serves "
                f"at most {self.max_tokens} (MAE_MAX_SERVE_TOKENS), so it would slow every other "
                "request; reconstruct with it from the command line (mae reconstruct) instead")
        if not info.can_reconstruct:
            raise DecoderMissingError(
                f"checkpoint {wanted!r} has no decoder (encoder-only weights), so it cannot "
                "reconstruct images; choose a checkpoint whose can_reconstruct is true"
            )
        return info

    # ------------------------------------------------------------- loading
    def loaded(self, info: CheckpointInfo) -> Reconstructor | None:
        """The reconstructor for ``info`` if it is loaded; never loads or checks the file (it may
        be stale: ``get`` does that, and the worker re-fits inputs made for another model)."""
        with self._lock:
            entry = self._cache.get(info.id)
        return None if entry is None else entry.reconstructor

    def get(self, model_id: str | None) -> Reconstructor:
        """A loaded reconstructor for ``model_id`` (loads it if needed; call off the event loop)."""
        info = self.resolve(model_id)
        stamp = _stamp(info.path)
        with self._lock:
            loaded = self._cache.get(info.id)
            if loaded is not None and loaded.stamp == stamp:
                self._cache.move_to_end(info.id)
                return loaded.reconstructor
            start = time.perf_counter()
            reconstructor = Reconstructor.from_checkpoint(info.path, device=self.device,
                                                         precision=self.precision)
            reconstructor.name = info.id
            log.info("loaded checkpoint %s (%s) on %s (%s) in %.0f ms", info.id, info.path.name,
                     reconstructor.device, reconstructor.compute_dtype,
                     (time.perf_counter() - start) * 1000)
            self._cache[info.id] = _Loaded(reconstructor, stamp)
            self._cache.move_to_end(info.id)
            self._evict()
            if info.id == self.default_id:
                self.default_state = "ready"
                self.default_message = f"default checkpoint {self.default_id!r} loaded"
            return reconstructor

    def _evict(self) -> None:
        evictable = [k for k in self._cache if k != self.default_id]
        while len(evictable) > self.cache_size:
            victim = evictable.pop(0)
            del self._cache[victim]
            log.info("unloaded checkpoint %s (cache holds %d)", victim, self.cache_size)

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return list(self._cache)

    def default_appeared(self) -> bool:
        """True when the default was missing at start-up and a file for it is now listed; the
        state turns to "loading" so the caller schedules ``load_default`` once."""
        with self._lock:
            if self.default_state != "missing" or self.default_id not in self.checkpoints():
                return False
            self.default_state = "loading"
            self.default_message = f"loading the default checkpoint {self.default_id!r}"
            return True

    def load_default(self) -> None:
        """Load the default checkpoint, recording the outcome in ``default_state``/``_message``."""
        try:
            self.get(None)
        except UnknownModelError:
            self.default_state = "missing"
            self.default_message = (
                f"no default checkpoint: {self.default_id!r} is not in {self.folder}. Choose another "
                "checkpoint from the list, set MAE_DEFAULT_MODEL / --default-model, or train one "
                "with `mae train`"
            )
            log.warning(self.default_message)
        except Exception as exc:  # noqa: BLE001 - the service still starts and reports it
            self.default_state = "failed"
            self.default_message = f"the default checkpoint {self.default_id!r} failed to load: {exc}"
            log.error(self.default_message)
        else:
            self.default_state = "ready"
            self.default_message = f"default checkpoint {self.default_id!r} loaded"


def tokens_per_image(card: dict[str, Any]) -> int | None:
    """Patches per image from a card's ``model_config`` (None when it does not say)."""
    config = card.get("model_config") if isinstance(card, dict) else None
    try:
        size, patch = config["img_size"], int(config["patch_size"])
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        return (height // patch) * (width // patch)
    except (TypeError, KeyError, ValueError, IndexError, ZeroDivisionError):
        return None


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise CheckpointError(f"checkpoint file {path.name} disappeared: {exc}") from None
    return st.st_mtime_ns, st.st_size
