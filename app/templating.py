"""Jinja2 templates and static assets, shared by every page router.

Page routers render with ``templates.TemplateResponse(request, "page.html", context)``; pages
extend ``base.html`` (blocks ``title``, ``head``, ``content``, ``scripts``). In templates,
``asset('css/app.css')`` gives a cache-busted ``/static/...`` URL and ``plotly_js_url`` the locally
served plotly.js, so no page requests anything outside the server.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import sys
from functools import lru_cache
from pathlib import Path

from fastapi.templating import Jinja2Templates

import mae_core

_APP_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """``templates`` or ``static``: ``app/<name>`` in an installed wheel (pyproject maps the
    repository's top-level folders there), ``<name>/`` beside ``app/`` in a source checkout or
    editable install."""
    installed = _APP_DIR / name
    return installed if installed.is_dir() else _APP_DIR.parent / name


TEMPLATES_DIR = resource_dir("templates")
STATIC_DIR = resource_dir("static")
PLOTLY_JS_URL = "/vendor/plotly.min.js"


@lru_cache(maxsize=1)
def plotly_js_path() -> Path | None:
    """The plotly.min.js bundled inside the installed ``plotly`` Python package."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.origin:
        return None
    package_dir = Path(spec.origin).parent
    bundled = package_dir / "package_data" / "plotly.min.js"
    if bundled.is_file():
        return bundled
    return next(iter(sorted(package_dir.rglob("plotly.min.js"))), None)


@lru_cache(maxsize=1)
def mae_command() -> str:
    """How to run this installation's ``mae`` from a shell, for commands the pages show:
    ``mae`` when that is what PATH finds, else the script's full path (a venv that is not
    activated), else ``python -m mae_cli`` with this interpreter."""
    script = Path(sys.executable).parent / "mae"
    on_path = shutil.which("mae")
    if script.is_file():
        if on_path and Path(on_path).resolve() == script.resolve():
            return "mae"
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m mae_cli"


def shell_quote(value: object) -> str:
    return shlex.quote(str(value))


def asset(path: str) -> str:
    """``/static/<path>?v=<mtime>`` so browsers refetch a changed file."""
    try:
        version = int((STATIC_DIR / path).stat().st_mtime)
    except OSError:
        version = 0
    return f"/static/{path}?v={version}"


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals.update(asset=asset, plotly_js_url=PLOTLY_JS_URL, version=mae_core.__version__,
                             mae_command=mae_command)
templates.env.filters["shell_quote"] = shell_quote
# A page-config with NaN/Infinity would not parse in the browser: refuse to write one.
templates.env.policies["json.dumps_kwargs"] = {"sort_keys": True, "allow_nan": False}
