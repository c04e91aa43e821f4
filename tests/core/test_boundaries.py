"""The layers: mae_core is the torch library and imports nothing above it; app reaches mae_core
only through its public names."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from support import REPO

WEB_STACK = ("fastapi", "starlette", "pydantic", "pydantic_settings", "jinja2", "plotly", "uvicorn")
ABOVE_CORE = ("app", "mae_service", "mae_tools", "mae_cli")


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    return {name.split(".")[0] for name in json.loads(out)}


def test_importing_mae_core_loads_no_web_stack_and_nothing_above_it():
    loaded = _modules_loaded_by("import mae_core, mae_core.train, mae_core.evaluation, "
                                "mae_core.checkpoint, mae_core.runs")
    assert not loaded & {*WEB_STACK, *ABOVE_CORE}, sorted(loaded & {*WEB_STACK, *ABOVE_CORE})


def _imports(package: str) -> list[tuple[str, str]]:
    """(file, imported module) for every absolute import in a package's source."""
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(REPO)), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found += [(str(path.relative_to(REPO)), node.module)]
    return found


def test_no_module_of_mae_core_imports_a_layer_above_it():
    upward = [(f, m) for f, m in _imports("mae_core") if m.split(".")[0] in {*WEB_STACK, *ABOVE_CORE}]
    # `python -m mae_core` is the deprecated alias of `python -m mae_cli`; it only runs as a script
    assert upward == [("mae_core/__main__.py", "mae_cli")]


def test_the_service_layer_does_not_import_the_web_app_or_the_tools():
    upward = [(f, m) for f, m in _imports("mae_service")
              if m.split(".")[0] in {*WEB_STACK, "app", "mae_tools", "mae_cli"}]
    assert upward == []


def test_app_uses_only_public_names_of_mae_core():
    """A name is private when any part of its module path or the imported name starts with _."""
    private = []
    for path in sorted((REPO / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] in ("mae_core", "mae_tools", "mae_cli"):
                parts = node.module.split(".")
                assert parts[0] == "mae_core" or parts[0] == "mae_service", (path, node.module)
                names = [a.name for a in node.names]
                if any(p.startswith("_") for p in parts) or any(n.startswith("_") for n in names):
                    private.append((str(path.relative_to(REPO)), node.module, names))
    assert private == []
