"""Helpers shared by the test groups (importable as ``support.*``: tests/ is on pytest's path)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
