"""MAE Lab web service: FastAPI + Jinja2 pages on top of ``mae_core``'s public API.

``create_app(settings)`` builds the app; ``mae serve`` runs it with uvicorn. Both names are
imported lazily, so ``import app.paper_results`` does not pull in the web stack.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .main import create_app

        return create_app
    if name == "Settings":
        from .settings import Settings

        return Settings
    raise AttributeError(f"module 'app' has no attribute {name!r}")
