"""scripts/run-app.sh and scripts/test.sh install once per change of pyproject.toml /
constraints.txt, from constraints.txt, honour TORCH_INDEX_URL and say how to reach `mae`.
Run against a stand-in .venv/bin/python that records what pip would have been asked."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../calls.log"
"""


@pytest.fixture
def checkout(tmp_path):
    for name in ("pyproject.toml", "constraints.txt", "scripts/venv.sh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755 | stat.S_IXUSR)
    return tmp_path


def ensure(checkout: Path, extras: str = "app", **env: str) -> list[str]:
    log = checkout / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    full_env = {k: v for k, v in os.environ.items() if k != "TORCH_INDEX_URL"} | env
    subprocess.run(["bash", "-c", f"set -euo pipefail; source scripts/venv.sh; ensure_venv {extras}"],
                   cwd=checkout, env=full_env, check=True, capture_output=True)
    return log.read_text().splitlines() if log.exists() else []


def test_installs_from_the_constraints_once_per_change(checkout):
    first = ensure(checkout)
    assert any("-c constraints.txt" in c and '-e .[app]' in c for c in first), first
    assert not any(" -q " in f" {c} " and ".[app]" in c for c in first)  # the long install shows progress
    assert ensure(checkout) == []  # nothing changed: no pip at all
    with (checkout / "constraints.txt").open("a") as f:
        f.write("\n")
    assert any(".[app]" in c for c in ensure(checkout))
    assert ensure(checkout) == []
    assert any(".[dev]" in c for c in ensure(checkout, "dev"))  # other extras: install again


def test_torch_index_url_is_honoured(checkout):
    calls = ensure(checkout, TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu")
    torch_call = next(c for c in calls if "--index-url" in c)
    assert "https://download.pytorch.org/whl/cpu" in torch_call and "torch" in torch_call
    assert "-c constraints.txt" in torch_call
    assert calls.index(torch_call) < next(i for i, c in enumerate(calls) if ".[app]" in c)


@pytest.mark.parametrize("script", ["scripts/run-app.sh", "scripts/test.sh"])
def test_scripts_use_it_and_say_how_to_run_mae(script):
    text = (REPO / script).read_text()
    assert "source scripts/venv.sh" in text and "ensure_venv" in text
    assert "source .venv/bin/activate" in text and ".venv/bin/mae" in text


def test_test_script_runs_ruff_and_mypy_before_pytest():
    text = (REPO / "scripts/test.sh").read_text()
    assert "set -euo pipefail" in text
    ruff, mypy, pytest_at = text.index("ruff check ."), text.index(".venv/bin/mypy"), text.index("-m pytest")
    assert ruff < mypy < pytest_at
