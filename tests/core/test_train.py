import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mae_core import create_model, load_model
from mae_core.runs import RunFolder
from mae_core.train import Trainer
from mae_core.train.optim import param_groups
from mae_core.train.schedule import StepSchedule, base_lr, lr_at
from support.train_helpers import TINY, make_images, read_losses, tiny_cli_args, tiny_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("data") / "imgs")


def test_loss_falls_on_a_small_fixed_set(images, tmp_path):
    config = tiny_config(images, tmp_path / "run", epochs=15, log_every=4)
    result = Trainer(config, progress=False).run()
    losses = [loss for _, loss in read_losses(result.run_dir)]
    assert result.status == "completed" and result.step == 60
    assert losses[-1] < 0.6 * losses[0], losses
    exported = load_model(result.export_path)
    assert exported.card["training"]["steps"] == 60
    assert exported.card["training"]["images_seen"] == 60 * 8


def test_lr_schedule_matches_the_formula():
    lr = base_lr(1.5e-4, 4096)
    assert lr == pytest.approx(1.5e-4 * 4096 / 256)
    assert lr_at(0, lr, 0, 40, 800) == 0
    assert lr_at(20, lr, 0, 40, 800) == pytest.approx(lr / 2)
    assert lr_at(40, lr, 0, 40, 800) == pytest.approx(lr)
    mid = 40 + (800 - 40) / 2
    assert lr_at(mid, lr, 0, 40, 800) == pytest.approx(lr / 2)
    assert lr_at(800, lr, 1e-6, 40, 800) == pytest.approx(1e-6)
    e = 123.4
    assert lr_at(e, lr, 0, 40, 800) == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * (e - 40) / 760)))


def test_lr_is_set_per_iteration(images, tmp_path):
    config = tiny_config(images, tmp_path / "run", epochs=3, warmup_epochs=None) if False else \
        tiny_config(images, tmp_path / "run", epochs=3)
    result = Trainer(config, progress=False).run()
    records = RunFolder(result.run_dir).read_metrics()
    for r in records:  # lr logged at step s was set from fractional epoch (s - 1) / steps_per_epoch
        assert r["lr"] == pytest.approx(lr_at((r["step"] - 1) / 4, 2e-3, 0, 1, 3))


def test_accumulation_follows_the_official_fractional_epoch():
    """engine_pretrain.py sets the lr at a group's first micro-batch from
    data_iter_step / len(data_loader) + epoch; with 8 micro-batches per epoch and accum 3 the
    second step of an epoch starts at micro-batch 3 (epoch + 3/8), not epoch + 1/2."""
    s = StepSchedule(micro_per_epoch=8, accum=3, epochs=3)
    assert (s.steps_per_epoch, s.total_steps, s.tail_micro) == (2, 6, 2)
    assert [s.lr_epoch(k) for k in range(6)] == [0, 0.375, 1, 1.375, 2, 2.375]
    assert StepSchedule(8, 2, 1).tail_micro == 0 and StepSchedule(8, 2, 1).lr_epoch(1) == 0.25


def test_lr_with_ragged_accumulation_matches_the_official_schedule(images, tmp_path):
    # 32 images, batch 4: 8 micro-batches per epoch; accum 3 leaves a tail of 2 per epoch
    config = tiny_config(images, tmp_path / "run", batch_size=4, accum_iter=3, epochs=3)
    result = Trainer(config, progress=False).run()
    records = RunFolder(result.run_dir).read_metrics()
    assert result.status == "completed" and result.step == 6 and result.images_seen == 6 * 12
    for r in records:
        epoch, group = divmod(r["step"] - 1, 2)
        assert r["lr"] == pytest.approx(lr_at(epoch + group * 3 / 8, 2e-3, 0, 1, 3)), r


def test_max_steps_is_a_budget_and_a_plain_resume_finishes_and_exports(images, tmp_path):
    """Issue 13: run 8 steps, then resume with no budget: the schedule runs to its end, the
    model is exported, and the run equals an uninterrupted one bit for bit."""
    full = Trainer(tiny_config(images, tmp_path / "full", epochs=4), progress=False).run()
    first = Trainer(tiny_config(images, tmp_path / "split", epochs=4, max_steps=8),
                    progress=False).run()
    assert (first.status, first.step, first.export_path) == ("stopped", 8, None)
    saved = RunFolder(first.run_dir).read_config()
    assert saved["max_steps"] is None  # a budget, not part of the resumable schedule
    budget = Trainer(tiny_config(images, tmp_path / "split", epochs=4, max_steps=3), resume=True,
                     progress=False).run()
    assert (budget.status, budget.step) == ("stopped", 11)  # a new budget of 3 more steps
    rest = Trainer(tiny_config(images, tmp_path / "split", epochs=4), resume=True,
                   progress=False).run()
    assert (rest.status, rest.step) == ("completed", 16) and rest.export_path.is_file()
    assert read_losses(rest.run_dir) == read_losses(full.run_dir)
    a, b = _final_state(full.run_dir), _final_state(rest.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_weight_decay_groups():
    model = create_model("mae_vit_tiny_patch16", img_size=32, patch_size=8, **TINY)
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    not_decayed = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0
    assert "blocks.0.attn.qkv.weight" in decayed and "patch_embed.proj.weight" in decayed
    assert "blocks.0.attn.qkv.bias" in not_decayed and "norm.weight" in not_decayed
    assert "decoder_norm.bias" in not_decayed
    assert "pos_embed" not in decayed | not_decayed  # fixed tables are not trained at all
    assert "decoder_pos_embed" not in decayed | not_decayed


def _final_state(run_dir):
    return load_model(RunFolder(run_dir).export_path).state_dict()


def test_accumulation_equals_one_big_batch(images, tmp_path):
    a = Trainer(tiny_config(images, tmp_path / "a", batch_size=16, epochs=2), progress=False).run()
    b = Trainer(tiny_config(images, tmp_path / "b", batch_size=8, accum_iter=2, epochs=2),
                progress=False).run()
    la, lb = read_losses(a.run_dir), read_losses(b.run_dir)
    assert [s for s, _ in la] == [s for s, _ in lb]
    for (_, x), (_, y) in zip(la, lb):
        assert x == pytest.approx(y, abs=1e-5)
    sa, sb = _final_state(a.run_dir), _final_state(b.run_dir)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=2e-4, rtol=1e-3)  # Adam amplifies fp noise


def test_corrupt_images_are_skipped_and_counted(images, tmp_path):
    data = tmp_path / "mixed"
    make_images(data, count=16)
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (data / "empty.png").write_bytes(b"")
    good = (data / "img_000.png").read_bytes()
    (data / "truncated.png").write_bytes(good[: len(good) // 2])
    result = Trainer(tiny_config(data, tmp_path / "run", epochs=2), progress=False).run()
    assert result.status == "completed"
    assert result.skipped_images >= 2  # every epoch samples most of the broken files
    summary = RunFolder(result.run_dir).read_summary()
    assert summary["skipped_images"] == result.skipped_images


def _cli(args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mae_cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _write_cfg(tmp_path, **fields):
    cfg = tmp_path / f"cfg_{len(list(tmp_path.glob('cfg_*')))}.json"
    cfg.write_text(json.dumps({"model_overrides": dict(TINY, patch_size=8), **fields}))
    return cfg


def _wait_for_step(run_dir, step, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        last = RunFolder(run_dir).last_metrics()
        if last is not None and last["step"] >= step:
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("run did not reach the step in time")


@pytest.mark.slow
def test_sigkill_then_resume_reproduces_the_uninterrupted_run(images, tmp_path):
    cfg = _write_cfg(tmp_path, ckpt_every_steps=3)
    full = _cli(tiny_cli_args(images, tmp_path / "full") + [str(cfg)])
    assert full.wait(timeout=300) == 0, full.stderr.read()[-2000:]

    run = tmp_path / "killed"
    proc = _cli(tiny_cli_args(images, run) + [str(cfg)])
    _wait_for_step(run, 10, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps_before = [s for s, _ in read_losses(run)]
    assert steps_before[-1] < 24, "the run finished before it was killed"
    resumed = _cli(["train", "--resume", "--output-dir", str(run), "--no-progress"])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-2000:]
    expected, got = read_losses(tmp_path / "full"), read_losses(run)
    assert [s for s, _ in got] == [s for s, _ in expected] == list(range(1, 25))
    for (_, a), (_, b) in zip(expected, got):
        assert a == pytest.approx(b, abs=1e-6)


@pytest.mark.slow
def test_sigterm_leaves_a_loadable_checkpoint(images, tmp_path):
    cfg = _write_cfg(tmp_path, ckpt_every_steps=1000, epochs=200)
    run = tmp_path / "term"
    proc = _cli(tiny_cli_args(images, run) + [str(cfg)])
    _wait_for_step(run, 3, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    from mae_core.train.state import load_training_state

    state = load_training_state(RunFolder(run).latest_checkpoint())
    assert state["step"] >= 3
    assert RunFolder(run).read_summary()["status"] == "interrupted"


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_single_process(images, tmp_path):
    cfg = _write_cfg(tmp_path, epochs=2)
    single = _cli(tiny_cli_args(images, tmp_path / "single") + [str(cfg), "--batch-size", "16"])
    assert single.wait(timeout=300) == 0, single.stderr.read()[-2000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "mae_cli", *tiny_cli_args(images, tmp_path / "ddp"), str(cfg),
         "--batch-size", "8"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a, b = read_losses(tmp_path / "single"), read_losses(tmp_path / "ddp")
    assert [s for s, _ in a] == [s for s, _ in b]
    for (_, x), (_, y) in zip(a, b):
        assert x == pytest.approx(y, abs=1e-5)
    sa, sb = _final_state(tmp_path / "single"), _final_state(tmp_path / "ddp")
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=2e-4, rtol=1e-3)  # Adam amplifies fp noise


@pytest.mark.slow
def test_readme_resume_sequence_exports_the_model(images, tmp_path):
    """The README's two lines: `mae train ... --max-steps 8`, then `mae train --output-dir RUN
    --resume` runs to the end of the schedule, exports model.safetensors and matches an
    uninterrupted run exactly."""
    cfg = _write_cfg(tmp_path)
    full = _cli(tiny_cli_args(images, tmp_path / "full") + [str(cfg)])
    assert full.wait(timeout=300) == 0, full.stderr.read()[-2000:]
    run = tmp_path / "demo"
    first = _cli(tiny_cli_args(images, run) + [str(cfg), "--max-steps", "8"])
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert json.loads(out.splitlines()[-1])["status"] == "stopped"
    assert not RunFolder(run).export_path.exists()
    resumed = _cli(["train", "--output-dir", str(run), "--resume"])
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    result = json.loads(out.splitlines()[-1])
    assert result["status"] == "completed" and result["step"] == 24, result
    assert RunFolder(run).export_path.is_file() and result["export"]
    assert read_losses(run) == read_losses(tmp_path / "full")
    a, b = _final_state(tmp_path / "full"), _final_state(run)
    assert all(torch.equal(a[k], b[k]) for k in a)
