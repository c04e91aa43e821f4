"""Training jobs over REST: submit, list, inspect, cancel, retry, and follow a job's metrics.

Jobs live in the SQLite store in the data folder (``Settings.data_dir``), or in the PostgreSQL
store ``Settings.jobs_url`` names; ``mae worker`` processes run them. Every handler here is a plain ``def``: SQLite and file reads run in the
thread pool, never on the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from mae_core.train.fields import FIELDS_BY_NAME, MODEL_OVERRIDE_FIELDS
from mae_service.jobs import (
    list_datasets,
    submit_pretrain,
)
from mae_core.errors import InvalidParameterError
from mae_service.jobs.evaluation import describe_labels
from mae_service.jobs.spec import PRETRAIN
from mae_core.runs import CURVE_POINTS, RunFolder
from mae_service.jobs.spec import PRETRAIN_FIELDS

from ..deps import RegistryDep, SettingsDep
from ..eval_jobs import EVAL_REQUESTS, submit_evaluation, validated
from ..fieldmodels import model_from_fields
from ..job_access import (
    NewStoreDep, StoreDep, existing, job_errors, job_payload, list_payload,
)
from ..openapi_bodies import DispatchBody
from ..registry import ModelRegistry
from ..schemas import ErrorResponse

router = APIRouter(prefix="/api", tags=["jobs"])

LOG_TAIL_BYTES = 64 * 1024
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]  # mae_service.jobs.STATES


ModelOverrides = model_from_fields(
    "ModelOverrides", (FIELDS_BY_NAME[n] for n in MODEL_OVERRIDE_FIELDS),
    doc="Architecture changes on top of the preset (each bounded; the cost limits bound the whole).")
# A pretraining job, derived from mae_service.jobs.spec.PRETRAIN_FIELDS: only ``dataset`` is
# required; the rest default to the recipe's values.
JobRequest = model_from_fields(
    "JobRequest", PRETRAIN_FIELDS, required=("dataset",), kind=PRETRAIN, kind_default=True,
    examples={"dataset": "corpus", "recipe": "cpu-demo", "model": "mae_vit_tiny_patch16",
              "mask_ratio": 0.75, "epochs": 20, "batch_size": 32, "seed": 0, "img_size": 224,
              "init_from": "mae-lab-default"},
    doc="A pretraining job. Only ``dataset`` is required; the rest default to the recipe's values.",
    model_overrides=(ModelOverrides | None, Field(None, examples=[{"decoder_depth": 2}],  # type: ignore[operator]
                                                  description="architecture changes, e.g. decoder_depth")))
# Every kind's request model: the handler picks one by ``kind``; /openapi.json shows their oneOf.
JOB_REQUESTS = {PRETRAIN: JobRequest, **EVAL_REQUESTS}
JOB_BODY = DispatchBody("kind", JOB_REQUESTS, default=PRETRAIN, description=(
    "A JobRequest (pretraining) or, with kind knn | linprobe | finetune, that kind's request."))


class JobView(BaseModel):
    """A job as the API shows it."""

    model_config = ConfigDict(protected_namespaces=())

    id: str = Field(examples=["job-20250101-120000-a1b2"])
    kind: str = Field(examples=["pretrain"])
    gpus: int = Field(1, description="processes (GPUs) the job runs on; a worker claims it only if it has that many")
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
    damaged: str | None = Field(None, description="why this row cannot be read in full (it is "
                                                  "shown, not hidden; cancel or ignore it)")


class JobList(BaseModel):
    jobs: list[JobView]
    counts: dict[str, int] = Field(description="jobs per state")
    workers: list[dict[str, Any]] = Field(description="workers seen in the last 30 s")


_ERRORS = {404: {"model": ErrorResponse, "description": "no job with this id"},
           409: {"model": ErrorResponse, "description": "the job's state does not allow this"}}


# The body is a plain dict so that the handler dispatches on ``kind`` itself (default pretrain,
# each kind's messages in its field table's words); app/openapi_bodies.py says why and documents
# it as the oneOf of JOB_REQUESTS (JOB_BODY).
@router.post("/jobs", status_code=201, response_model=JobView,
             summary="Submit a job: pretraining, or a knn | linprobe | finetune evaluation",
             responses={422: {"model": ErrorResponse, "description": "a field to change (the "
                                                                       "message says which)"}},
             openapi_extra=JOB_BODY.openapi_extra())
def submit(raw: Annotated[dict[str, Any], Body()], store: NewStoreDep, settings: SettingsDep,
           registry: RegistryDep) -> dict[str, Any]:
    """Queue a pretraining job on a dataset under the data roots; a `mae worker` runs it.
    With `"kind": "knn" | "linprobe" | "finetune"` it queues an evaluation of `checkpoint` on a
    labelled `dataset` instead (fields: mae_service.jobs.spec.JOB_FIELDS[kind]).

    Example: `curl -X POST localhost:8000/api/jobs -H 'content-type: application/json'
    -d '{"dataset": "corpus", "model": "mae_vit_tiny_patch16", "epochs": 5}'`
    """
    if raw.get("kind", PRETRAIN) != PRETRAIN:  # evaluation jobs (app/eval_jobs.py)
        job = submit_evaluation(raw, store, settings, registry)
        return job_payload(job, store.events(job.id))
    body: JobRequest = validated(JobRequest, raw)
    params = body.model_dump(exclude_none=True, exclude={"kind", "max_attempts"})
    job = submit_pretrain(store, settings.data_roots, params,
                          max_attempts=body.max_attempts or settings.job_max_attempts,  # type: ignore[attr-defined]
                          checkpoints=checkpoint_file(registry), limits=settings.cost_limits)
    return job_payload(job, store.events(job.id))


def checkpoint_file(registry: ModelRegistry):
    """``init_from`` id → weights file, for the checkpoints this server lists (with a decoder)."""
    def resolve(checkpoint_id: str) -> str:
        info = registry.checkpoints().get(checkpoint_id)
        if info is None or info.error:
            known = ", ".join(i for i, v in registry.checkpoints().items() if v.can_reconstruct)
            raise InvalidParameterError(f"no usable checkpoint {checkpoint_id!r}; choose one of: "
                                        f"{known or 'none'} (GET /api/models lists them)")
        if not info.can_reconstruct:
            raise InvalidParameterError(f"checkpoint {checkpoint_id!r} has no decoder (encoder-only "
                                        "weights), so pretraining cannot continue from it")
        return str(info.path)
    return resolve


@router.options("/jobs", status_code=204, include_in_schema=False)
def jobs_options() -> Response:
    """Both methods of /api/jobs (the router alone would answer with the first route's)."""
    return Response(status_code=204, headers={"Allow": "GET, HEAD, POST, OPTIONS"})


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
        # the first line read is cut: drop it, or mark it when it is all there is to show
        tail = tail[1:] if len(tail) > 1 else ["…" + tail[0]]
    return {"job": job.id, "lines": tail[-lines:]}


@router.get("/datasets", summary="Datasets a job may train on: folders of images under the data roots")
def datasets(settings: SettingsDep) -> dict[str, Any]:
    return {"roots": [str(r) for r in settings.data_roots],
            "datasets": [{**d.to_dict(), **describe_labels(d.path)}  # labels: evaluation jobs
                         for d in list_datasets(settings.data_roots)]}
