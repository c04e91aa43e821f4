"""Running one job of each kind; a pretraining job also publishes its exported model.

A runner gets the claimed job and callbacks from the worker, and returns how the run ended.
Every file it writes is fenced: ``fence()`` runs before each write and raises ``LeaseLost``
once another worker owns the job, so a stalled worker that wakes up writes nothing more.
Runners always resume: a job that was interrupted, killed or retried continues from the last
checkpoint in its run folder (``DATA_DIR/runs/<job-id>``).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mae_core.io_utils import write_atomic, write_json_atomic
from mae_core.train import TrainConfig, Trainer
from mae_service.jobs.ddp import run_ddp
from mae_service.jobs.paths import DataDir
from mae_service.jobs.spec import PRETRAIN
from mae_service.jobs.store import Job

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]
StopFn = Callable[[], bool]
FenceFn = Callable[[], None]  # raises LeaseLost once another worker owns the job


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``completed``, ``stopped`` (asked to) or ``interrupted`` (a signal)."""

    status: str
    step: int
    checkpoint: str | None = None


def publish_checkpoint(export_path: Path, folder: Path, checkpoint_id: str,
                       job_info: dict[str, Any]) -> Path:
    """Copy an exported model into the shared checkpoint folder as ``<checkpoint_id>``.

    The card goes first and the weights last, both atomically, so a listing that sees the
    weights file also sees its card.
    """
    target = folder / f"{checkpoint_id}.safetensors"
    card = json.loads(export_path.with_suffix(".json").read_text(encoding="utf-8"))
    card["name"] = checkpoint_id
    card["job"] = job_info
    write_json_atomic(target.with_suffix(".json"), card)
    write_atomic(target, lambda tmp: shutil.copyfile(export_path, tmp))
    log.info("published %s as checkpoint %s", export_path, checkpoint_id)
    return target


def run_pretrain(job: Job, data_dir: DataDir, should_stop: StopFn, on_progress: ProgressFn,
                 fence: FenceFn, launch: tuple[str, str] | None = None) -> Outcome:
    """Pretrain in this process, or, for a job of several ``gpus``, on that many torchrun
    processes (``launch``: the job store and worker id the ranks fence their writes with)."""
    config = TrainConfig.from_dict(job.config).replace(output_dir=str(data_dir.run_dir(job.id)))
    log.info("job %s: pretraining %s on %s for %d epochs on %d process(es)", job.id, config.model,
             config.data.path, config.epochs, job.gpus)
    if job.gpus > 1:
        if launch is None:
            raise RuntimeError(f"job {job.id} asks for {job.gpus} gpus: only a worker launches it")
        status, step, export = run_ddp(job, config.to_dict(), should_stop, on_progress, fence,
                                       *launch, nproc=job.gpus)
        export_path = None if export is None else Path(export)
    else:
        result = Trainer(config, resume=True, progress=False, should_stop=should_stop,
                         on_log=on_progress, fence=fence).run()
        status, step, export_path = result.status, result.step, result.export_path
    fence()  # publishing writes the shared checkpoint folder: only while the job is ours
    checkpoint = None
    if status == "completed" and export_path is not None:
        publish_checkpoint(export_path, data_dir.checkpoints, job.id,
                           {"id": job.id, "kind": job.kind, "params": job.params})
        checkpoint = job.id
    return Outcome(status, step, checkpoint)


RUNNERS: dict[str, Callable[[Job, DataDir, StopFn, ProgressFn, FenceFn], Outcome]] = {
    PRETRAIN: run_pretrain}

# Evaluation jobs (k-NN, linear probe, fine-tuning); imported here, after Outcome, which they use.
from mae_service.jobs.evaluation import EVAL_RUNNERS  # noqa: E402

RUNNERS.update(EVAL_RUNNERS)
