"""The shared data folder: what the web app and every worker read and write.

Layout::

    DATA_DIR/jobs/jobs.sqlite           the job store (SQLite, WAL; -wal/-shm files beside it)
    DATA_DIR/runs/<job-id>/             the trainer's run folder (metrics, snapshots, checkpoints,
                                        worker.log)
    DATA_DIR/checkpoints/<job-id>.safetensors (+ .json card)
                                        exported models of succeeded jobs; the web app lists them
                                        beside its checkpoint folder

Web and workers may mount this folder at different paths: the store keeps only job ids, never
absolute paths into the data folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mae_core import defaults

STORE_FILE = "jobs.sqlite"


def default_data_dir() -> Path:
    """``$MAE_DATA_DIR`` or ``var/`` in the current directory."""
    return defaults.data_dir()


def default_data_roots() -> list[Path]:
    """Where datasets are looked for when none are configured: ``data/`` in the current
    directory (``mae data build-corpus data/corpus`` writes there)."""
    return [Path.cwd() / "data"]


@dataclass(frozen=True)
class DataDir:
    """Paths inside one data folder. ``ensure()`` creates the folders."""

    root: Path

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def store(self) -> Path:
        return self.jobs / STORE_FILE

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def run_dir(self, job_id: str) -> Path:
        return self.runs / job_id

    def ensure(self) -> "DataDir":
        fresh = not self.root.exists()
        for folder in (self.jobs, self.runs, self.checkpoints):
            folder.mkdir(parents=True, exist_ok=True)
        if fresh:
            # a data folder created inside a git checkout keeps itself out of git
            (self.root / ".gitignore").write_text("*\n", encoding="utf-8")
        return self
