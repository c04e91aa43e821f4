"""Evaluation jobs over REST (``POST /api/jobs`` with ``kind`` knn | linprobe | finetune), their
results, and the request model built from the one field table (mae_core.evaluation.fields)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from mae_core.evaluation.fields import FIELDS, PROTOCOLS
from mae_service.jobs import JobNotFoundError, JobStore
from mae_service.jobs.evaluation import read_result, submit_eval

from .job_access import get_store
from .registry import ModelRegistry
from .settings import Settings


def _request_model() -> type[BaseModel]:
    specs = {}
    for protocol in PROTOCOLS:
        for spec in FIELDS[protocol]:
            specs.setdefault(spec.name, (spec, []))[1].append(protocol)
    fields: dict[str, Any] = {
        "kind": (Literal["knn", "linprobe", "finetune"], Field(description="the protocol")),
        "max_attempts": (Optional[int], Field(None, ge=1, le=20)),
    }
    for name, (spec, protocols) in specs.items():
        extra = "" if len(protocols) == len(PROTOCOLS) else f" ({', '.join(protocols)})"
        fields[name] = (Optional[spec.type], Field(None, description=f"{spec.help}; {spec.bounds_text()}{extra}"))
    return create_model("EvalJobRequest", __config__=ConfigDict(extra="forbid"), **fields)


EvalJobRequest = _request_model()


def validated(model: type[BaseModel], body: Any) -> Any:
    """``body`` as ``model``, or the app's 422 naming the fields (as FastAPI's own check)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def submit_evaluation(body: dict[str, Any], store: JobStore, settings: Settings,
                      registry: ModelRegistry):
    request = validated(EvalJobRequest, body)
    params = request.model_dump(exclude_none=True, exclude={"kind", "max_attempts"})
    checkpoints = {cid: info.path for cid, info in registry.checkpoints().items() if not info.error}
    return submit_eval(store, settings.data_roots, request.kind, params, checkpoints,
                       max_attempts=request.max_attempts or settings.job_max_attempts)


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
