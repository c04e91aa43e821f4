"""The web package's layering: routers do not import each other; main.py imports them plainly."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"


def test_no_router_imports_another_router():
    names = {p.stem for p in (APP / "routers").glob("*.py")}
    for path in (APP / "routers").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert node.module not in names, f"{path.name} imports routers/{node.module}.py"
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app.routers"):
                raise AssertionError(f"{path.name} imports {node.module}")


def test_main_loads_routers_without_importlib():
    assert "importlib" not in (APP / "main.py").read_text()


def test_no_app_module_over_600_lines():
    long = {str(p.relative_to(APP)): n for p in APP.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert not long, long
