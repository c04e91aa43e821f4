"""Evaluation jobs that train (linear probe, fine-tuning) resume after their last completed epoch:
a job stopped after epoch 1 and run again trains epochs 2.. only, and ends with the same result
as a run that was never stopped (same RNG streams, restored from the per-epoch state file)."""

from __future__ import annotations

import pytest
import torch

from mae_core.evaluation.resume import STATE_FILE
from mae_service.jobs import JobStore
from mae_service.jobs.evaluation import read_result, run_eval, submit_eval
from mae_service.jobs.paths import DataDir
from mae_tools.testing import write_checkpoint
from support.labelled_images import make_labelled

BODIES = {
    "linprobe": {"epochs": 4, "batch_size": 8, "warmup_epochs": 1, "optimizer": "sgd"},
    "finetune": {"epochs": 3, "batch_size": 8, "warmup_epochs": 0, "tune_blocks": 1, "mixup": 0.8,
                 "cutmix": 0, "aa": "", "reprob": 0.25},  # mixup/erasing: draws from every RNG
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-resume")
    make_labelled(root / "images" / "colours", per_class=6, size=32)
    ckpt = write_checkpoint(root / "checkpoints", "mae-lab-default")
    data = DataDir(root / "data").ensure()
    return root, data, JobStore(data.store), {"mae-lab-default": ckpt}


def _run(job, data, stop_after=None):
    epochs, calls = [], []

    def should_stop():
        calls.append(1)  # the first call is before any work; later ones after an epoch
        return stop_after is not None and len(calls) > stop_after

    outcome = run_eval(job, data, should_stop, lambda p: epochs.append(p["step"]), lambda: None)
    return outcome, epochs


@pytest.mark.parametrize("kind", ["linprobe", "finetune"])
def test_a_stopped_job_resumes_after_its_last_epoch_with_the_uninterrupted_result(setup, kind):
    root, data, store, checkpoints = setup
    body = {"checkpoint": "mae-lab-default", "dataset": "colours", "device": "cpu", **BODIES[kind]}
    plain = submit_eval(store, [root / "images"], kind, body, checkpoints)
    resumed = submit_eval(store, [root / "images"], kind, body, checkpoints)
    torch.manual_seed(123)  # whatever the global state, the run seeds itself
    assert _run(plain, data)[0].status == "completed"

    outcome, epochs = _run(resumed, data, stop_after=1)
    assert (outcome.status, outcome.step, epochs) == ("stopped", 1, [1])
    state = torch.load(data.run_dir(resumed.id) / STATE_FILE, weights_only=True)
    assert state["epoch"] == 1 and [h["epoch"] for h in state["history"]] == [1]
    torch.manual_seed(456)
    outcome, epochs = _run(resumed, data)
    total = BODIES[kind]["epochs"]
    assert outcome.status == "completed" and epochs == list(range(2, total + 1))  # none repeated

    want, got = read_result(data.run_dir(plain.id)), read_result(data.run_dir(resumed.id))
    assert [c["epoch"] for c in got["curves"]] == list(range(1, total + 1))
    assert got["curves"] == want["curves"]  # every epoch's loss (and accuracy) identical
    assert (got["top1"], got["confusion"]) == (want["top1"], want["confusion"])
