"""What an encoder learned, as a picture: embed every image of a dataset with a checkpoint's
frozen encoder, project to 2-D, and find an image's nearest neighbours.

Embeddings are cached per (checkpoint file, dataset contents, pooling) in
``DATA_DIR/features/<key>.npz``; computing them runs in a background thread whose progress pages
poll. Features are the unmasked encoder's cls token or the mean of its patch tokens (stated in
every answer), from a resize + centre crop at the model's input size. Images are referred to by
their index in the dataset's sorted file list and their path relative to the dataset folder,
never by an absolute path.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from mae_core import load_model
from mae_core.errors import InvalidParameterError, MAEError
from mae_core.imaging import to_rgb
from mae_core.io_utils import write_atomic
from mae_core.train.data import crop_to_tensor, find_images

log = logging.getLogger(__name__)

POOLS = ("cls", "mean")
PROJECTIONS = ("pca", "umap")
BATCH = 32
MAX_IMAGES = 20_000  # a dataset past this is embedded from its first 20,000 files


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Embeddings:
    """A dataset's features under one checkpoint and pooling."""

    vectors: np.ndarray  # [N, D] float32
    files: list[str]  # relative to the dataset folder, in dataset order
    labels: np.ndarray  # [N] class index, -1 when the dataset is not labelled
    classes: list[str]


@dataclass
class _Task:
    done: int = 0
    total: int = 0
    error: str | None = None
    thread: threading.Thread | None = field(default=None, repr=False)


def dataset_classes(root: Path, files: list[Path]) -> tuple[list[str], np.ndarray]:
    """Classes are the first-level sub-folders when every image sits in one and there are at
    least two (the ImageFolder layout); otherwise the dataset is unlabelled."""
    parts = [f.relative_to(root).parts for f in files]
    if any(len(p) < 2 for p in parts):
        return [], np.full(len(files), -1)
    classes = sorted({p[0] for p in parts})
    if len(classes) < 2:
        return [], np.full(len(files), -1)
    index = {name: i for i, name in enumerate(classes)}
    return classes, np.array([index[p[0]] for p in parts])


class FeatureStore:
    """Computes, caches and serves embeddings under ``data_dir/features``."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / "features"
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}
        # (weights, dataset, pool) -> key of the task computing it: a poll while it runs reuses
        # the key instead of stat-ing every dataset file again.
        self._running: dict[tuple[str, str, str], str] = {}
        self._model: tuple[tuple[str, int], torch.nn.Module] | None = None

    def model_for(self, weights: Path) -> torch.nn.Module:
        """The encoder for neighbour queries; the last one used stays loaded."""
        stamp = (str(weights), weights.stat().st_mtime_ns)
        with self._lock:
            if self._model is None or self._model[0] != stamp:
                self._model = (stamp, load_model(weights).eval())
            return self._model[1]

    # ------------------------------------------------------------------ keys and cache
    @staticmethod
    def key(weights: Path, dataset_root: Path, pool: str) -> str:
        if pool not in POOLS:
            raise InvalidParameterError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        st = weights.stat()
        files = find_images(dataset_root)[:MAX_IMAGES]
        digest = hashlib.sha1(f"{weights.name}|{st.st_mtime_ns}|{st.st_size}|{pool}".encode())
        for f in files:
            fs = f.stat()
            digest.update(f"{f.relative_to(dataset_root)}|{fs.st_mtime_ns}|{fs.st_size}".encode())
        return digest.hexdigest()[:20]

    def key_for(self, weights: Path, dataset_root: Path, pool: str) -> str:
        """``key``, but the running task's own key while one computes this request (cheap polls)."""
        with self._lock:
            key = self._running.get((str(weights), str(dataset_root), pool))
            task = self._tasks.get(key) if key else None
            if task is not None and task.thread is not None and task.thread.is_alive():
                return key  # type: ignore[return-value]
        return self.key(weights, dataset_root, pool)

    def cached(self, key: str) -> Embeddings | None:
        path = self.folder / f"{key}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return Embeddings(data["vectors"], [str(f) for f in data["files"]], data["labels"],
                              [str(c) for c in data["classes"]])

    def progress(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            task = self._tasks.get(key)
        if task is None:
            return None
        running = task.thread is not None and task.thread.is_alive()
        return {"done": task.done, "total": task.total, "running": running, "error": task.error}

    # ------------------------------------------------------------------ computing
    def start(self, key: str, weights: Path, dataset_root: Path, pool: str,
              device: str | None = None) -> None:
        """Embed the dataset in a background thread (no-op when cached or already running)."""
        if self.cached(key) is not None:
            return
        with self._lock:
            task = self._tasks.get(key)
            if task is not None and task.thread is not None and task.thread.is_alive():
                return
            task = _Task()
            task.thread = threading.Thread(target=self._run, name=f"features-{key}", daemon=True,
                                           args=(task, key, weights, dataset_root, pool, device))
            self._tasks[key] = task
            self._running[(str(weights), str(dataset_root), pool)] = key
            task.thread.start()

    def wait(self, key: str, timeout: float | None = None) -> None:
        with self._lock:
            task = self._tasks.get(key)
        if task is not None and task.thread is not None:
            task.thread.join(timeout)

    def _run(self, task: _Task, key: str, weights: Path, root: Path, pool: str,
             device: str | None) -> None:
        try:
            def on_progress(done: int, total: int) -> None:
                task.done, task.total = done, total

            embeddings = embed_folder(weights, root, pool, device, on_progress)
            self._save(key, embeddings)
        except (MAEError, OSError, ValueError) as exc:
            task.error = str(exc)
            log.warning("embedding %s failed: %s", root.name, exc)
        except Exception as exc:  # noqa: BLE001 - reported to the page, never fatal
            task.error = f"{type(exc).__name__}: {exc}"
            log.exception("embedding %s failed", root.name)

    def _save(self, key: str, e: Embeddings) -> None:
        def writer(tmp: Path) -> None:
            with open(tmp, "wb") as out:
                np.savez(out, vectors=e.vectors, files=np.array(e.files), labels=e.labels,
                         classes=np.array(e.classes))

        write_atomic(self.folder / f"{key}.npz", writer)


@torch.inference_mode()
def embed_images(model: torch.nn.Module, images: list[Image.Image], pool: str) -> np.ndarray:
    """Features [N, D] of PIL images (resize + centre crop at the model's input size)."""
    size = model.config.img_size[0]
    device = next(model.parameters()).device
    batch = torch.stack([crop_to_tensor(to_rgb(img), size, None) for img in images]).to(device)
    return model.forward_features(batch, pool=pool).float().cpu().numpy()


def embed_folder(weights: Path, root: Path, pool: str, device: str | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> Embeddings:
    files = find_images(root)[:MAX_IMAGES]
    classes, labels = dataset_classes(root, files)
    model = load_model(weights).to(device or "cpu").eval()
    chunks = []
    for start in range(0, len(files), BATCH):
        images = []
        for path in files[start:start + BATCH]:
            with Image.open(path) as img:
                img.load()
                images.append(img.copy())
        chunks.append(embed_images(model, images, pool))
        if on_progress is not None:
            on_progress(min(start + BATCH, len(files)), len(files))
    return Embeddings(np.concatenate(chunks).astype(np.float32),
                      [str(f.relative_to(root)) for f in files], labels, classes)


def project(vectors: np.ndarray, method: str = "pca") -> tuple[np.ndarray, dict[str, Any]]:
    """2-D coordinates and what they are (PCA: the share of variance each axis explains)."""
    if method not in PROJECTIONS:
        raise InvalidParameterError(f"projection must be one of {', '.join(PROJECTIONS)}, got {method!r}")
    if method == "umap":
        if not umap_available():
            raise InvalidParameterError("UMAP needs the umap-learn package: pip install umap-learn; "
                                        "PCA is always available")
        import umap

        coords = umap.UMAP(n_components=2, random_state=0).fit_transform(vectors)
        return np.asarray(coords, dtype=np.float32), {"method": "umap"}
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2), np.float32), {"method": "pca", "explained_variance": [0.0, 0.0]}
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2] if vt.shape[0] >= 2 else np.vstack([vt, np.zeros_like(vt)])
    coords = centred @ axes.T
    variance = s**2
    share = (variance[:2] / variance.sum()).tolist() if variance.sum() > 0 else [0.0, 0.0]
    return coords.astype(np.float32), {"method": "pca", "explained_variance": share + [0.0] * (2 - len(share))}


def nearest(vectors: np.ndarray, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(index, cosine similarity) of the ``k`` dataset images most similar to ``query``."""
    if k < 1:
        raise InvalidParameterError(f"k must be at least 1, got {k}")
    norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
    sims = vectors @ query / np.maximum(norms, 1e-12)
    order = np.argsort(-sims)[:k]
    return [(int(i), float(sims[i])) for i in order]
