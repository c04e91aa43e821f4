"""Training jobs over REST: submit, list, inspect, cancel, retry, and follow a job's metrics.

Jobs live in the SQLite store in the data folder (``Settings.data_dir``), or in the PostgreSQL
store ``Settings.jobs_url`` names; ``mae worker`` processes run them. Every handler here is a plain ``def``: SQLite and file reads run in the
thread pool, never on the event loop.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Annotated, Any, Iterator, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from mae_service.jobs import (
    STATES,
    Job,
    JobNotFoundError,
    JobStateError,
    JobStore,
    list_datasets,
    submit_pretrain,
)
from mae_core.runs import CURVE_POINTS, RunFolder

from ..deps import SettingsDep
from ..schemas import ErrorResponse
from ..settings import Settings

router = APIRouter(prefix="/api", tags=["jobs"])

LOG_TAIL_BYTES = 64 * 1024
WORKER_SEEN_S = 30.0  # a worker that polled within this many seconds counts as online
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]  # mae_service.jobs.STATES


class JobRequest(BaseModel):
    """A pretraining job. Only ``dataset`` is required; the rest default to the recipe's values."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    dataset: str = Field(min_length=1, max_length=128, examples=["corpus"],
                         description="name of a folder of images under a data root (GET /api/datasets)")
    recipe: str = Field("cpu-demo", examples=["cpu-demo"],
                        description="starting point: cpu-demo (small, fast) or paper (Table 8)")
    model: str | None = Field(None, examples=["mae_vit_tiny_patch16"],
                              description="model preset (see `mae models`); default the recipe's")
    mask_strategy: str = Field("random", examples=["random"], description="random, block or grid")
    mask_ratio: float = Field(0.75, gt=0, lt=1, examples=[0.75],
                              description="fraction of patches removed (grid: exactly 0.75)")
    epochs: int | None = Field(None, ge=1, le=100_000, examples=[20])
    batch_size: int | None = Field(None, ge=1, le=65_536, examples=[32],
                                   description="images per step; at most the dataset's size")
    norm_pix_loss: bool | None = Field(None, examples=[False],
                                       description="regress per-patch normalised pixels (paper default)")
    seed: int = Field(0, ge=0, le=2**31 - 1, examples=[0])
    img_size: int | None = Field(None, ge=16, le=1024, examples=[224],
                                 description="square crop in pixels; a multiple of the patch size")
    blr: float | None = Field(None, gt=0, le=1, examples=[1.5e-4],
                              description="base lr; lr = blr * batch / 256 (default: the recipe's lr)")
    warmup_epochs: float | None = Field(None, ge=0, examples=[2.0],
                                        description="default keeps the recipe's warmup fraction")
    device: str | None = Field(None, examples=["cuda"], description="cpu, cuda, mps; default best")
    model_overrides: dict[str, int] = Field(default_factory=dict, examples=[{"decoder_depth": 2}],
                                            description="architecture changes, e.g. decoder_depth")
    log_every: int | None = Field(None, ge=1, description="steps between metrics lines")
    snapshot_every: int | None = Field(None, ge=1, description="steps between reconstruction snapshots")
    ckpt_every_steps: int | None = Field(None, ge=1, description="steps between checkpoints")
    max_attempts: int | None = Field(None, ge=1, le=20,
                                     description="starts before the job is marked failed")


class JobView(BaseModel):
    """A job as the API shows it."""

    model_config = ConfigDict(protected_namespaces=())

    id: str = Field(examples=["job-20250101-120000-a1b2"])
    kind: str = Field(examples=["pretrain"])
    state: str = Field(description="queued, running, succeeded, failed or cancelled", examples=["running"])
    params: dict[str, Any] = Field(description="the request with defaults filled in")
    attempts: int = Field(description="starts so far (a graceful shutdown does not count)")
    max_attempts: int
    worker: str | None = Field(description="worker holding the job while it runs")
    cancel_requested: bool
    stale: bool = Field(description="running, but its worker stopped renewing the lease; another "
                                    "worker will resume it")
    step: int
    total_steps: int | None
    progress: float = Field(description="step / total_steps, 0 to 1")
    eta_s: float | None = Field(description="estimated seconds left while running")
    loss: float | None
    error: str | None = Field(description="why it failed, or the last problem of an earlier attempt")
    checkpoint: str | None = Field(description="the trained model's id in GET /api/models")
    created: float
    started: float | None
    finished: float | None
    heartbeat: float | None
    updated: float
    links: dict[str, str]
    events: list[dict[str, Any]] | None = None


class JobList(BaseModel):
    jobs: list[JobView]
    counts: dict[str, int] = Field(description="jobs per state")
    workers: list[dict[str, Any]] = Field(description="workers seen in the last 30 s")


def get_store(request: Request) -> JobStore | None:
    """The job store in the data folder, or None while it does not exist: reading never creates
    files. The first submission (or the first `mae worker`) creates it."""
    store = getattr(request.app.state, "job_store", None)
    if store is None:
        settings: Settings = request.app.state.settings
        if settings.jobs_store_url:  # a shared PostgreSQL store: always there to read
            store = request.app.state.job_store = JobStore(settings.jobs_store_url)
            return store
        if not settings.data.store.is_file():
            return None
        store = request.app.state.job_store = JobStore(settings.data.store)
    return store


def create_store(request: Request) -> JobStore:
    """The job store, created with the data folder if needed (for submissions)."""
    store = get_store(request)
    if store is None:
        settings: Settings = request.app.state.settings
        store = request.app.state.job_store = JobStore(settings.data.ensure().store)
    return store


StoreDep = Annotated[JobStore | None, Depends(get_store)]
NewStoreDep = Annotated[JobStore, Depends(create_store)]


def existing(store: JobStore | None) -> JobStore:
    """The store, or the "no such job" error when no job was ever submitted."""
    if store is None:
        raise JobNotFoundError("no job has been submitted yet; POST /api/jobs submits one")
    return store


@contextmanager
def job_errors() -> Iterator[None]:
    """Unknown job → 404, wrong state → 409 (JSON error bodies via the app's handler)."""
    try:
        yield
    except JobNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except JobStateError as exc:
        raise HTTPException(409, str(exc)) from None


def job_payload(job: Job, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    base = f"/api/jobs/{job.id}"
    data = job.to_dict(time.time())
    data.pop("lease_expires", None)
    data["links"] = {"self": base, "page": f"/train/jobs/{job.id}", "metrics": f"{base}/metrics",
                     "logs": f"{base}/logs", "cancel": f"{base}/cancel", "retry": f"{base}/retry"}
    data["events"] = events
    return data


def list_payload(store: JobStore | None, state: str | None = None, limit: int = 100) -> dict[str, Any]:
    if store is None:
        return {"jobs": [], "counts": {s: 0 for s in STATES}, "workers": []}
    return {"jobs": [job_payload(j) for j in store.list_jobs(limit=limit, state=state)],
            "counts": store.counts(), "workers": store.workers(WORKER_SEEN_S)}


_ERRORS = {404: {"model": ErrorResponse, "description": "no job with this id"},
           409: {"model": ErrorResponse, "description": "the job's state does not allow this"}}


@router.post("/jobs", status_code=201, response_model=JobView, summary="Submit a pretraining job",
             responses={422: {"model": ErrorResponse, "description": "a field to change (the "
                                                                       "message says which)"}})
def submit(body: JobRequest, store: NewStoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Queue a pretraining job on a dataset under the data roots; a `mae worker` runs it.

    Example: `curl -X POST localhost:8000/api/jobs -H 'content-type: application/json'
    -d '{"dataset": "corpus", "model": "mae_vit_tiny_patch16", "epochs": 5}'`
    """
    params = body.model_dump(exclude_none=True, exclude={"max_attempts"})
    job = submit_pretrain(store, settings.data_roots, params,
                          max_attempts=body.max_attempts or settings.job_max_attempts)
    return job_payload(job, store.events(job.id))


@router.get("/jobs", response_model=JobList, summary="Jobs, newest first, with counts and workers")
def jobs(store: StoreDep,
         state: Annotated[JobState | None, Query(description="only jobs in this state")] = None,
         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return list_payload(store, state, limit)


@router.get("/jobs/{job_id}", response_model=JobView, responses=_ERRORS,
            summary="One job, with its history of events")
def job(job_id: str, store: StoreDep) -> dict[str, Any]:
    with job_errors():
        store = existing(store)
        return job_payload(store.get(job_id), store.events(job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobView, responses=_ERRORS,
             summary="Cancel: a queued job at once, a running one after its current step")
def cancel(job_id: str, store: StoreDep) -> dict[str, Any]:
    with job_errors():
        store = existing(store)
        job = store.cancel(job_id)
    return job_payload(job, store.events(job_id))


@router.post("/jobs/{job_id}/retry", response_model=JobView, responses=_ERRORS,
             summary="Queue a failed or cancelled job again (it resumes from its checkpoint)")
def retry(job_id: str, store: StoreDep) -> dict[str, Any]:
    with job_errors():
        store = existing(store)
        job = store.retry(job_id)
    return job_payload(job, store.events(job_id))


@router.get("/jobs/{job_id}/metrics", responses=_ERRORS,
            summary="The job's metrics lines (loss, lr, ...) and snapshot list, for polling")
def metrics(job_id: str, store: StoreDep, settings: SettingsDep, since_step: Annotated[int | None, Query(
                ge=0, description="only lines after this step (poll incrementally; reads only "
                                  "the file's tail)")] = None,
            max_points: Annotated[int, Query(ge=0, le=1_000_000, description=(
                "without since_step: at most about this many lines, downsampled (first, last, "
                "min and max loss per bucket of steps; `downsampled` says so); 0 = every line"))]
            = CURVE_POINTS) -> dict[str, Any]:
    with job_errors():
        job = existing(store).get(job_id)
    folder = RunFolder(settings.data.run_dir(job.id))
    snapshots = [{"step": s.step, "url": f"/api/jobs/{job.id}/snapshots/{s.step}"}
                 for s in folder.snapshots()]
    rows, note = folder.poll_metrics(since_step, max_points)
    return {"job": job_payload(job), "metrics": rows, "downsampled": note, "snapshots": snapshots}


@router.get("/jobs/{job_id}/snapshots/{step}", response_class=FileResponse, responses=_ERRORS,
            summary="A reconstruction snapshot (PNG) taken at this step")
def snapshot(job_id: str, step: int, store: StoreDep, settings: SettingsDep) -> FileResponse:
    with job_errors():
        job = existing(store).get(job_id)
    for snap in RunFolder(settings.data.run_dir(job.id)).snapshots():
        if snap.step == step:
            return FileResponse(snap.path, media_type="image/png",
                                headers={"Cache-Control": "public, max-age=3600"})
    raise HTTPException(404, f"job {job.id} has no snapshot at step {step}")


@router.get("/jobs/{job_id}/logs", responses=_ERRORS, summary="The last lines of the job's worker log")
def logs(job_id: str, store: StoreDep, settings: SettingsDep,
         lines: Annotated[int, Query(ge=1, le=2000)] = 200) -> dict[str, Any]:
    with job_errors():
        job = existing(store).get(job_id)
    path = RunFolder(settings.data.run_dir(job.id)).log_path
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):  # no log (or a broken run folder)
        return {"job": job.id, "lines": []}
    tail = text.splitlines()
    if size > LOG_TAIL_BYTES and tail:
        tail = tail[1:]  # the first line is probably cut
    return {"job": job.id, "lines": tail[-lines:]}


@router.get("/datasets", summary="Datasets a job may train on: folders of images under the data roots")
def datasets(settings: SettingsDep) -> dict[str, Any]:
    return {"roots": [str(r) for r in settings.data_roots],
            "datasets": [d.to_dict() for d in list_datasets(settings.data_roots)]}
