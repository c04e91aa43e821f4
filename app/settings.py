"""Service settings, read from the environment with the ``MAE_`` prefix (pydantic-settings).

Every field can be set as ``MAE_<FIELD>`` (e.g. ``MAE_CHECKPOINT_DIR=/models``,
``MAE_QUEUE_SIZE=64``); ``mae serve`` flags override the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mae_core.defaults import DEFAULT_CHECKPOINT_ID, checkpoint_dir


class Settings(BaseSettings):
    """Configuration of one web-service process.

    Attributes:
        checkpoint_dir: folder whose weights files are offered, selected by id (file stem).
        default_model: id of the checkpoint loaded at start-up and used when a request names none.
        device: ``cpu``, ``cuda``, ``mps``; empty picks the best available.
        max_upload_bytes: largest accepted image file; larger uploads get 413.
        max_image_pixels: largest accepted width x height; larger images get 413 (a small file
            can decode to a huge bitmap).
        queue_size: reconstruction requests accepted but not finished (waiting + running) before
            new ones get 503 with ``Retry-After``.
        batch_window_ms: how long the worker waits after the first request for compatible ones to
            run in the same forward pass.
        max_batch_size: most images in one forward pass.
        model_cache_size: loaded checkpoints kept in memory (the default one is always kept).
        host, port: where ``mae serve`` listens.
    """

    model_config = SettingsConfigDict(env_prefix="MAE_", extra="ignore")

    checkpoint_dir: Path = Field(default_factory=checkpoint_dir)
    default_model: str = DEFAULT_CHECKPOINT_ID
    device: str | None = None
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    queue_size: int = Field(default=32, ge=0)
    batch_window_ms: float = Field(default=3.0, ge=0)
    max_batch_size: int = Field(default=16, ge=1)
    model_cache_size: int = Field(default=2, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
