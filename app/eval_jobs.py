"""Evaluation jobs over REST (``POST /api/jobs`` with ``kind`` knn | linprobe | finetune), their
results, and the request model built from the one field table (mae_core.evaluation.fields)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from mae_core.errors import InvalidParameterError
from mae_core.evaluation.fields import PROTOCOLS, resolve_eval_fields
from mae_service.jobs import JobNotFoundError, JobStore, list_datasets
from mae_service.jobs.evaluation import describe_labels, read_result, submit_eval
from mae_service.jobs.spec import JOB_FIELDS, MAX_ATTEMPTS, PRETRAIN

from .fieldmodels import model_from_fields
from .job_access import get_store
from .registry import ModelRegistry
from .settings import Settings


# One request model per evaluation kind, generated from its JOB_FIELDS table (the protocol's
# FieldSpecs plus max_attempts): the same table as the checks and the Train form's limits.
EVAL_REQUESTS: dict[str, type[BaseModel]] = {
    kind: model_from_fields(
        f"{kind.capitalize()}JobRequest", JOB_FIELDS[kind], required=("checkpoint", "dataset"),
        kind=kind, examples={"checkpoint": "mae-lab-default", "dataset": "colours"},
        doc=f"A {kind} evaluation job: checkpoint and a labelled dataset are required.")
    for kind in PROTOCOLS
}


def validated(model: type[BaseModel], body: Any) -> Any:
    """``body`` as ``model``, or the app's 422 naming the fields (as FastAPI's own check)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def submit_evaluation(body: dict[str, Any], store: JobStore, settings: Settings,
                      registry: ModelRegistry):
    """Dispatch on ``kind``: check the body against that kind's FieldSpecs (``spec.problem``: every
    problem at once, in the table's words), then parse it with the kind's generated model."""
    kind = body.get("kind")
    model = EVAL_REQUESTS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidParameterError(f"kind {kind!r} is not a job kind; send one of: "
                                    f"{', '.join(JOB_FIELDS)} (default {PRETRAIN})")
    fields = {k: v for k, v in body.items() if k not in ("kind", MAX_ATTEMPTS.name)}
    attempts = body.get(MAX_ATTEMPTS.name)
    problems = [p for p in [attempts is not None and MAX_ATTEMPTS.problem(attempts)] if p]
    try:
        resolve_eval_fields(kind, fields)
    except InvalidParameterError as exc:
        problems.insert(0, str(exc))
    if problems:
        raise InvalidParameterError("; ".join(problems))
    request = validated(model, body)
    params = request.model_dump(exclude_none=True, exclude={"kind", "max_attempts"})
    checkpoints = {cid: info.path for cid, info in registry.checkpoints().items() if not info.error}
    return submit_eval(store, settings.data_roots, request.kind, params, checkpoints,
                       max_attempts=request.max_attempts or settings.job_max_attempts)


def eval_form_config(settings: Settings, registry: ModelRegistry) -> dict[str, Any]:
    """What the Train form needs for evaluation jobs (page-config ``eval``): each kind's fields
    with bounds, defaults and help from its JOB_FIELDS table (checkpoint, dataset and
    max_attempts have their own controls), every usable checkpoint id (encoder-only ones too)
    and the labelled datasets with their class counts."""
    own = {"checkpoint", "dataset", MAX_ATTEMPTS.name}
    datasets = [{"id": d.id, "num_classes": labels["num_classes"], "num_images": d.num_images}
                for d in list_datasets(settings.data_roots)
                if (labels := describe_labels(d.path))["labelled"]]
    return {
        "kinds": list(PROTOCOLS),
        "fields": {kind: {f.name: f.limits() for f in JOB_FIELDS[kind] if f.name not in own}
                   for kind in PROTOCOLS},
        "checkpoints": sorted(i for i, v in registry.checkpoints().items() if not v.error),
        "datasets": datasets,
    }


router = APIRouter(prefix="/api", tags=["jobs"])


@router.get("/jobs/{job_id}/result", summary="An evaluation job's result (eval.json)",
            responses={404: {"description": "no such job, or no result yet"}})
def result(job_id: str, request: Request) -> dict[str, Any]:

    store = get_store(request)
    settings: Settings = request.app.state.settings
    try:
        job = store.get(job_id) if store is not None else None
    except JobNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    doc = read_result(settings.data.run_dir(job_id)) if job is not None else None
    if doc is None:
        raise HTTPException(404, f"job {job_id} has no evaluation result yet")
    return doc


def all_results(settings: Settings, store: JobStore | None) -> list[dict[str, Any]]:
    """Every succeeded evaluation job's result, newest first (for /analysis)."""
    if store is None:
        return []
    rows = []
    for job in store.list_jobs(limit=1000, state="succeeded"):
        if job.kind in PROTOCOLS:
            doc = read_result(settings.data.run_dir(job.id))
            if doc is not None:
                rows.append({"job": job.id, **doc})
    return rows


@router.get("/eval-results", summary="Every finished evaluation job's result, newest first")
def eval_results(request: Request) -> dict[str, Any]:

    return {"results": all_results(request.app.state.settings, get_store(request))}
