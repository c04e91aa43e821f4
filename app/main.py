"""The FastAPI application factory."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import AsyncIterator

import anyio
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

import mae_core
from mae_core.defaults import embedded_checkpoint_dir
from mae_service.downloads import DownloadManager
from mae_service.features import FeatureStore

from .admission import EXEMPT, Admission, AdmissionMiddleware
from .auth import SecurityMiddleware, default_hosts, read_tokens, with_inline_scripts_allowed
from .batcher import Batcher
from .errors import document_common_errors, install_error_handlers
from .middleware import BodyLimitMiddleware
from .openapi_bodies import document_dispatch_bodies
from .redact import PathScrubMiddleware
from .registry import ModelRegistry
from . import eval_jobs
from .routers import analysis, api, checkpoints, compare, features, jobs, pages, reconstruct, train
from .settings import Settings
from .strict_json import StrictJSONMiddleware
from .templating import STATIC_DIR

log = logging.getLogger(__name__)

DESCRIPTION = """
See what a Masked Autoencoder (He et al. 2021) reconstructs: upload an image, remove patches,
get the paper's Figure 4 panels back. The web pages at `/` use the same endpoints.

* `POST /reconstruct`: multipart upload, JSON or PNG out.
* `GET /api/models`: checkpoints offered by this server (select one by `id`).
* `GET /api/health`, `GET /api/ready`: liveness and readiness.
* `POST /api/jobs`, `GET /api/jobs`: training jobs, run by `mae worker` processes.

Errors are JSON `{"error", "status", "message"}`; the message says what to change.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the web app. ``settings`` defaults to ``Settings()`` (the ``MAE_`` environment).

    The inference worker starts in the lifespan and loads the default checkpoint first; until it
    has, ``/api/ready`` answers 503 (requests for it wait in the queue meanwhile).
    """
    settings = settings or Settings()
    # the embedded default checkpoint last: a checkpoint folder may hold a retrained default
    registry = ModelRegistry(settings.checkpoint_dir, settings.default_model, settings.device,
                             settings.model_cache_size,
                             extra_folders=[settings.data.checkpoints, embedded_checkpoint_dir()],
                             precision=settings.precision, max_tokens=settings.max_serve_tokens)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        admission = app.state.admission
        batcher = Batcher(registry, queue_size=settings.queue_size,
                          window=settings.batch_window_ms / 1000, max_batch=settings.max_batch_size,
                          requests_in_flight=lambda: admission.in_flight)
        app.state.batcher = batcher
        app.state.decode_limiter = anyio.CapacityLimiter(settings.decode_concurrency)
        batcher.start(on_start=registry.load_default)
        log.info("MAE Lab serving checkpoints from %s (default %s)", settings.checkpoint_dir,
                 settings.default_model)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(batcher.stop, min(1.0, settings.shutdown_grace_s))
            app.state.batcher = None

    app = FastAPI(
        title="MAE Lab", version=mae_core.__version__, description=DESCRIPTION, lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served by install_offline_docs, from local files
        openapi_tags=[{"name": "reconstruct", "description": "Mask and reconstruct images"},
                      {"name": "service", "description": "Status and checkpoints"}],
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.batcher = None
    app.state.downloads = DownloadManager(settings.data_dir)
    app.state.features = FeatureStore(settings.data_dir)
    install_error_handlers(app)
    app.state.admission = Admission(settings.max_in_flight, settings.max_receiving)
    app.add_middleware(StrictJSONMiddleware)  # innermost: reads bodies BodyLimit has bounded
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes, per_path={
        "/api/checkpoints": (settings.max_checkpoint_upload_bytes, "MAE_MAX_CHECKPOINT_UPLOAD_BYTES")},
        idle_timeout_s=settings.body_idle_timeout_s, min_rate=settings.body_min_bytes_per_s)
    if settings.hides_paths:
        app.add_middleware(PathScrubMiddleware, folders=[
            *((root, "<datasets>") for root in settings.data_roots),
            (settings.data.checkpoints, "<checkpoints>"), (settings.checkpoint_dir, "<checkpoints>"),
            (embedded_checkpoint_dir(), "<embedded>"), (settings.data_dir, "<data>")])
    app.add_middleware(AdmissionMiddleware, admission=app.state.admission)
    app.add_middleware(SecurityMiddleware, tokens=read_tokens(settings.auth_token, settings.auth_token_file),
                       allowed_hosts=settings.allowed_hosts or default_hosts(settings.host),
                       scope=settings.auth_scope)  # outermost: refusals cost no slot

    app.include_router(pages.router)
    app.include_router(reconstruct.router)
    app.include_router(compare.router)
    app.include_router(api.router)
    app.include_router(checkpoints.router)
    app.include_router(features.router)
    app.include_router(analysis.router)
    app.include_router(train.router)
    app.include_router(jobs.router)
    app.include_router(eval_jobs.router)
    app.state.nav = [{"href": "/", "label": "Reconstruct"}, {"href": "/models", "label": "Models"},
                     {"href": "/features", "label": "Features"},
                     {"href": "/analysis", "label": "Analysis"}, {"href": "/train", "label": "Train"}]
    document_dispatch_bodies(app, [jobs.JOB_BODY])
    document_common_errors(app, exempt=EXEMPT)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_offline_docs(app)
    return app


DOCS_ASSETS_URL = "/vendor/docs"
# ReDoc's side menu always shows the vendor's logo from its CDN (no option turns it off); the
# copy we serve shows an empty image instead, so the page makes no outside request.
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_SVG = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


def docs_assets_dir() -> Path:
    """Swagger UI's and ReDoc's JS/CSS as shipped inside the installed ``fastapi_offline`` package."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


@lru_cache(maxsize=1)
def offline_redoc_js() -> bytes:
    return (docs_assets_dir() / "redoc.standalone.js").read_bytes().replace(REDOC_CDN_LOGO, EMPTY_SVG)


def install_offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from files this server serves: FastAPI's defaults
    load them, their CSS, a favicon and Google Fonts from CDNs, so they are blank offline."""
    favicon = "/static/favicon.svg"

    @app.get(f"{DOCS_ASSETS_URL}/redoc.standalone.js", include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(offline_redoc_js(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=docs_assets_dir()), name="docs_assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_inline_scripts_allowed(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{favicon}",
            # no badge fetched from validator.swagger.io
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None}))

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return with_inline_scripts_allowed(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{favicon}", with_google_fonts=False)
