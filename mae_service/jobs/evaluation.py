"""Evaluation jobs: k-NN, linear probe and fine-tuning of a listed checkpoint on a labelled
dataset, queued and run like pretraining jobs (leases, heartbeats, cancel).

A request names a checkpoint by id and a dataset by id; both are resolved when the job is
submitted (the job's config keeps the resolved files, as a pretraining job keeps its dataset
folder). The fields and their checks are ``mae_core.evaluation.fields``. The result goes to the
run folder as ``eval.json`` (``mae_core.evaluation.report.eval_result``).

Cancel and progress act per epoch (linear probe, fine-tuning) or per run (k-NN). The linear
probe and fine-tuning save their state after each epoch in the run folder
(``mae_core.evaluation.resume``), so a retried or resumed job continues after its last
completed epoch; k-NN has no epochs and runs again (seconds).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from mae_core.errors import InvalidParameterError
from mae_core.evaluation.data import holdout_split, labelled_classes
from mae_core.evaluation.fields import PROTOCOLS, resolve_eval_fields
from mae_core.evaluation.report import RESULT_FILE, eval_result
from mae_core.evaluation.resume import STATE_FILE
from mae_core.io_utils import write_json_atomic
from mae_service.jobs.datasets import find_dataset
from mae_service.jobs.paths import DataDir
from mae_service.jobs.runner import FenceFn, Outcome, ProgressFn, StopFn
from mae_service.jobs.store import DEFAULT_MAX_ATTEMPTS, Job, JobStore

log = logging.getLogger(__name__)

EVAL_KINDS = PROTOCOLS


def describe_labels(path: Path) -> dict[str, Any]:
    """What GET /api/datasets says about a dataset's labels."""
    classes = labelled_classes(path)
    if classes is None:
        return {"labelled": False, "num_classes": 0, "classes": {}}
    return {"labelled": True, "num_classes": len(classes), "classes": classes}


def submit_eval(store: JobStore, roots: Sequence[Path], kind: str, params: Mapping[str, Any],
                checkpoints: Mapping[str, Path], max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Job:
    """Check an evaluation request and queue it.

    ``checkpoints`` maps every listed checkpoint id to its weights file.

    Raises:
        InvalidParameterError: a bad field, an unknown checkpoint or dataset, or a dataset
            without labels, saying what to send instead.
    """
    resolved = resolve_eval_fields(kind, params)
    problems = []
    weights = checkpoints.get(resolved["checkpoint"])
    if weights is None:
        problems.append(f"unknown checkpoint {resolved['checkpoint']!r}; choose one of: "
                        f"{', '.join(sorted(checkpoints)) or '(none)'} (GET /api/checkpoints)")
    dataset = find_dataset(roots, resolved["dataset"])
    classes = labelled_classes(dataset.path)
    if classes is None:
        problems.append(f"dataset {dataset.id!r} is not labelled: it needs at least two class "
                        "sub-folders of images (root/<class>/<image>); GET /api/datasets says "
                        "which datasets are")
    if problems:
        raise InvalidParameterError("; ".join(problems))
    assert classes is not None and weights is not None
    resolved.update(num_classes=len(classes), num_images=sum(classes.values()))
    config = {**resolved, "protocol": kind, "checkpoint_path": str(weights),
              "dataset_path": str(dataset.path)}
    return store.submit(kind, resolved, config, max_attempts=max_attempts)


def _protocol_config(cls, values: Mapping[str, Any], **fixed: Any):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in values.items() if k in names}, **fixed})


def run_eval(job: Job, data_dir: DataDir, should_stop: StopFn, on_progress: ProgressFn,
             fence: FenceFn) -> Outcome:
    from mae_core.evaluation import FinetuneConfig, LinprobeConfig, finetune, linear_probe
    from mae_core.evaluation.knn import KnnConfig, knn_classify

    cfg = job.config
    protocol = cfg["protocol"]
    run = data_dir.run_dir(job.id)
    total = int(cfg.get("epochs") or 1) if protocol != "knn" else 1
    if should_stop():
        return Outcome("stopped", 0)
    fence()
    train_dir, val_dir = holdout_split(cfg["dataset_path"], run / "split", cfg["val_every"])
    started = time.monotonic()
    stopped = False

    def on_epoch(record: dict[str, Any]) -> bool:
        nonlocal stopped
        on_progress({"step": record["epoch"], "total_steps": total, "loss": record.get("loss"),
                     "elapsed_s": time.monotonic() - started})
        stopped = should_stop()
        return stopped

    log.info("job %s: %s of %s on %s", job.id, protocol, cfg["checkpoint"], cfg["dataset"])
    fixed = dict(checkpoint=cfg["checkpoint_path"], train_dir=str(train_dir), val_dir=str(val_dir),
                 output_dir="")
    if protocol == "knn":
        raw = knn_classify(_protocol_config(KnnConfig, cfg, **fixed))
        on_epoch({"epoch": 1})
    elif protocol == "linprobe":
        raw = linear_probe(_protocol_config(LinprobeConfig, cfg, **fixed), on_epoch=on_epoch,
                           state_path=run / STATE_FILE)
    elif protocol == "finetune":
        raw = finetune(_protocol_config(FinetuneConfig, cfg, **fixed), on_epoch=on_epoch,
                       state_path=run / STATE_FILE)
    else:
        raise InvalidParameterError(f"unknown evaluation protocol {protocol!r}")
    if stopped:
        return Outcome("stopped", len(raw.get("history") or []))
    fence()
    doc = eval_result(protocol, raw, checkpoint=cfg["checkpoint"], dataset=cfg["dataset"],
                      elapsed_s=round(time.monotonic() - started, 3))
    write_json_atomic(run / RESULT_FILE, doc)
    log.info("job %s: %s top-1 %.2f%%", job.id, protocol, doc["top1"])
    return Outcome("completed", total)


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The evaluation result of a run folder, or None while there is none."""
    import json

    try:
        return json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


EVAL_RUNNERS = {kind: run_eval for kind in EVAL_KINDS}
