"""Service settings, read from the environment with the ``MAE_`` prefix (pydantic-settings).

Every field can be set as ``MAE_<FIELD>`` (e.g. ``MAE_CHECKPOINT_DIR=/models``,
``MAE_QUEUE_SIZE=64``); ``mae serve`` flags override the environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mae_core.defaults import DEFAULT_CHECKPOINT_ID, checkpoint_dir
from mae_core.runs import default_bench_dir, default_runs_dir
from mae_core.train.cost import CostLimits
from mae_service.jobs.paths import DataDir, default_data_dir, default_data_roots


class Settings(BaseSettings):
    """Configuration of one web-service process.

    Attributes:
        checkpoint_dir: folder whose weights files are offered, selected by id (file stem).
        default_model: id of the checkpoint loaded at start-up and used when a request names none.
        device: ``cpu``, ``cuda``, ``mps``; empty picks the best available.
        precision: ``fast`` (default: bf16 autocast on GPUs and on CPUs with native bf16, such as
            AVX512-BF16 or AMX; float32 elsewhere), ``auto`` (bf16 on GPUs only), ``bf16`` or
            ``fp32`` (exact); see ``mae_core.precision``.
        max_upload_bytes: largest accepted request body (the image plus the form fields),
            enforced while the body streams in, whatever Content-Length says; larger gets 413.
        max_image_pixels: largest accepted width x height, read from the image header before
            decoding; larger images get 413 (a small file can decode to a huge bitmap).
        decode_concurrency: uploads decoded at once (decoding a large image takes memory).
        max_in_flight: requests handled at once (decoding, queued, running), counted from when
            their body is complete; past it new ones get 503 with ``Retry-After`` before their
            body is read, and a body completing with no slot free gets 503.
        max_receiving: requests whose body is still arriving (an idle upload holds one of these,
            not a handling slot, until ``body_idle_timeout_s`` ends it); past it new requests
            with a body get 503 before it is read. Each may buffer up to ``max_upload_bytes``.
        queue_size: reconstruction requests accepted but not finished (waiting + running) before
            new ones get 503 with ``Retry-After`` / ``Retry-After-Ms``.
        batch_window_ms: how long the worker waits after the first request for compatible ones to
            run in the same forward pass.
        max_batch_size: most images in one forward pass.
        model_cache_size: loaded checkpoints kept in memory (the default one is always kept).
        shutdown_grace_s: on SIGTERM/SIGINT, how long requests already in flight may take to
            finish while new ones get 503; the process exits within this time (plus ~1 s).
        host, port: where ``mae serve`` listens.
        data_dir: the folder shared with ``mae worker``: job store, run folders and trained
            checkpoints (listed beside ``checkpoint_dir``).
        data_roots: folders whose sub-folders of images are the datasets a training job may
            use (``MAE_DATA_ROOTS=/data/images:/more``); default ``data/`` in the current directory.
        jobs_url: ``postgresql://...`` for a job store shared with workers on several hosts
            (``MAE_JOBS_URL``); empty: the SQLite file in ``data_dir``. Kept secret in logs.
        job_max_attempts: how many times a job is started before it is marked failed.
        job_max_params, job_max_tokens, job_max_steps, job_max_flops: the most a training job
            may cost, estimated before it is queued (``mae_core.train.cost``): parameters,
            tokens (patches) per image, optimizer steps of the whole schedule, training FLOPs.
            A job past one gets 422 naming the limit. The defaults admit the paper's ViT-B/L/H
            at 224 px with 1600-epoch ImageNet schedules and nothing far beyond.
        max_checkpoint_upload_bytes: largest checkpoint upload (``POST /api/checkpoints``),
            enforced while it streams like ``max_upload_bytes``; ViT-L in float32 is 1.3 GB.
        runs_dir: the training run folders the Analysis page lists (default the data folder's
            ``runs/``).
        bench_dir: where ``mae bench`` and ``mae ablate`` write their JSON (``bench_train.json``,
            ``ablations/<factor>.json``); default the data folder's ``bench-results/``.
        bench_train_file: the training benchmark file, if not ``bench_dir/bench_train.json``.
        max_jpeg_scans: most scans a JPEG upload may have (each is a pass over the whole image;
            a progressive-JPEG bomb repeats a tiny scan thousands of times); more get 413.
        max_decode_bytes: most memory one upload's decode may take, estimated from its header
            (pixels x the decoder's bytes per pixel, plus a TIFF's tile or strip); more get 413.
        max_header_bytes, max_headers: most bytes (request line plus headers) and header lines
            one request may send; past either the connection gets 431 and is closed, before
            the headers are kept.
        body_idle_timeout_s: longest wait for the next piece of a request body; a body that
            stalls longer gets 408 and the connection is closed.
        body_min_bytes_per_s: slowest average a request body may arrive at, checked once it
            has taken ``body_idle_timeout_s``; slower gets 408.
        max_serve_tokens: most patches per image a checkpoint may have to be served (224 px at
            patch 16 is 196; 512 px is 1024); bigger ones get 422 (they would slow every request).
        hide_paths: answer with folder labels (``<datasets>/cats``) instead of host paths;
            default: when ``host`` is not a loopback address (other machines can connect).
        allowed_hosts: host names the server answers to (``MAE_ALLOWED_HOSTS=lab.example,10.0.0.5``,
            ``*`` for any); empty: the loopback names plus ``host``. Others get 400.
        auth_token: one or more tokens (comma-separated); when set (or ``auth_token_file``, one
            token a line), requests need ``Authorization: Bearer <token>`` or the ``/login``
            cookie, except the probes and static assets.
        auth_scope: ``all`` (default): every route needs the token; ``write``: only
            state-changing requests (reading stays open).
    """

    model_config = SettingsConfigDict(env_prefix="MAE_", extra="ignore")

    checkpoint_dir: Path = Field(default_factory=checkpoint_dir)
    default_model: str = DEFAULT_CHECKPOINT_ID
    device: str | None = None
    precision: Literal["fast", "auto", "bf16", "fp32"] = "fast"
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    decode_concurrency: int = Field(default=2, ge=1)
    max_in_flight: int = Field(default=64, ge=1)
    max_receiving: int = Field(default=128, ge=1)
    queue_size: int = Field(default=32, ge=0)
    batch_window_ms: float = Field(default=3.0, ge=0)
    max_batch_size: int = Field(default=16, ge=1)
    model_cache_size: int = Field(default=2, ge=1)
    shutdown_grace_s: float = Field(default=10.0, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    data_roots: Annotated[list[Path], NoDecode] = Field(default_factory=default_data_roots)
    jobs_url: SecretStr | None = None
    job_max_attempts: int = Field(default=3, ge=1, le=20)
    job_max_params: int = Field(default=CostLimits.max_params, ge=1)
    job_max_tokens: int = Field(default=CostLimits.max_tokens, ge=1)
    job_max_steps: int = Field(default=CostLimits.max_steps, ge=1)
    job_max_flops: float = Field(default=CostLimits.max_flops, gt=0, allow_inf_nan=False)
    max_checkpoint_upload_bytes: int = Field(default=2 * 1024**3, ge=1)
    runs_dir: Path = Field(default_factory=default_runs_dir)
    bench_dir: Path = Field(default_factory=default_bench_dir)
    bench_train_file: Path | None = None
    max_jpeg_scans: int = Field(default=100, ge=1)
    max_decode_bytes: int = Field(default=256 * 1024**2, ge=1)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=8)
    body_idle_timeout_s: float = Field(default=15.0, gt=0)
    body_min_bytes_per_s: float = Field(default=1024.0, ge=0)
    max_serve_tokens: int = Field(default=1024, ge=1)
    hide_paths: bool | None = None
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    auth_token: str | None = Field(default=None, repr=False)
    auth_token_file: Path | None = None
    auth_scope: Literal["all", "write"] = "all"

    @field_validator("data_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        """``a:b`` (os.pathsep-separated) or a JSON list, from the environment."""
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else [p for p in text.split(os.pathsep) if p]
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @property
    def hides_paths(self) -> bool:
        """Whether answers show folder labels instead of host paths (see ``hide_paths``)."""
        if self.hide_paths is not None:
            return self.hide_paths
        return not (self.host in ("localhost", "::1") or self.host.startswith("127."))

    @property
    def decode_limits(self) -> dict[str, int]:
        """Every limit of an upload's decoding, as ``app.images.decode_image`` takes them."""
        return {"max_bytes": self.max_upload_bytes, "max_pixels": self.max_image_pixels,
                "max_scans": self.max_jpeg_scans, "max_decode_bytes": self.max_decode_bytes}

    @property
    def cost_limits(self) -> CostLimits:
        """The job-cost limits, as ``mae_service.jobs.submit_pretrain`` takes them."""
        return CostLimits(max_params=self.job_max_params, max_tokens=self.job_max_tokens,
                          max_steps=self.job_max_steps, max_flops=self.job_max_flops)

    @property
    def jobs_store_url(self) -> str | None:
        """The PostgreSQL job store's URL, or None for the SQLite file in the data folder."""
        url = self.jobs_url.get_secret_value().strip() if self.jobs_url else ""
        return url or None

    @property
    def data(self) -> DataDir:
        """Paths inside ``data_dir``."""
        return DataDir(self.data_dir)
