"""The routes' access to the job store: the store as a dependency (never created by reading),
HTTP errors for job errors, and the JSON a job and the job list are served as.

Used by the jobs API and the Train pages alike, so neither router imports the other.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from typing import Annotated, Any, Iterator

from fastapi import Depends, HTTPException, Request

from mae_service.jobs import STATES, Job, JobNotFoundError, JobStateError, JobStore

from .settings import Settings

WORKER_SEEN_S = 30.0  # a worker that polled within this many seconds counts as online


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


def _finite(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def job_payload(job: Job, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A job as the API and the pages show it: strict JSON always. A row whose params cannot be
    read, or hold non-finite numbers, is shown with ``damaged`` saying why (and the rest kept)."""
    base = f"/api/jobs/{job.id}"
    data = job.to_dict(time.time())
    data.pop("lease_expires", None)
    data["damaged"] = job.params.get("damaged") if isinstance(job.params.get("damaged"), str) else None
    if not _finite(data["params"]):
        data["params"], data["damaged"] = {}, "stored params hold a non-finite number"
    for key, value in data.items():
        if isinstance(value, float) and not math.isfinite(value):
            data[key] = None
    if events is not None and not _finite(events):
        events = [e for e in events if _finite(e)]
    data["links"] = {"self": base, "page": f"/train/jobs/{job.id}", "metrics": f"{base}/metrics",
                     "logs": f"{base}/logs", "cancel": f"{base}/cancel", "retry": f"{base}/retry"}
    data["events"] = events
    return data


def list_payload(store: JobStore | None, state: str | None = None, limit: int = 100) -> dict[str, Any]:
    if store is None:
        return {"jobs": [], "counts": {s: 0 for s in STATES}, "workers": []}
    return {"jobs": [job_payload(j) for j in store.list_jobs(limit=limit, state=state)],
            "counts": store.counts(), "workers": store.workers(WORKER_SEEN_S)}
