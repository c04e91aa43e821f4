"""Errors of the job store, typed so callers can map them (unknown job, wrong state)."""

from __future__ import annotations

from mae_core.errors import MAEError


class JobNotFoundError(MAEError, LookupError):
    """No job has this id."""


class JobStateError(MAEError):
    """The job is in a state that does not allow the operation (e.g. cancel a finished job)."""
