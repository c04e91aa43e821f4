"""Job requests: datasets under the data roots, and the TrainConfig a request resolves to."""

from __future__ import annotations

import pytest

from mae_core.errors import InvalidParameterError
from mae_service.jobs import JobStore, find_dataset, list_datasets, pretrain_config, submit_pretrain
from mae_service.jobs.datasets import count_images
from mae_service.jobs.spec import field_problems
from mae_core.train.config import RECIPES
from mae_core.train.init import CONTINUE_LR
from mae_tools.testing import TINY_64, write_checkpoint
from support.train_helpers import TINY, make_images


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("roots")
    make_images(base / "one" / "shapes", count=40, size=40)
    make_images(base / "one" / "nested" / "a" / "b", count=3, size=40)
    (base / "one" / "empty").mkdir()
    (base / "one" / "notes").mkdir()
    (base / "one" / "notes" / "readme.txt").write_text("no images here")
    make_images(base / "one" / ".hidden", count=2, size=40)
    make_images(base / "two" / "shapes", count=5, size=40)  # shadowed by one/shapes
    make_images(base / "two" / "gradients", count=12, size=40, seed=2)
    return [base / "one", base / "two", base / "missing"]


def test_datasets_are_image_folders_under_the_roots(roots):
    found = {d.id: d for d in list_datasets(roots)}
    assert sorted(found) == ["gradients", "nested", "shapes"]
    assert found["shapes"].num_images == 40 and found["shapes"].path == roots[0] / "shapes"
    assert found["nested"].num_images == 3 and not found["nested"].capped
    assert count_images(roots[0] / "shapes", cap=7) == 7


@pytest.mark.parametrize("name", ["../one", "/etc", "shapes/..", "..", "empty", "notes", ".hidden", ""])
def test_unknown_or_path_like_dataset_names_are_refused(roots, name):
    with pytest.raises(InvalidParameterError, match="choose one of: gradients, nested, shapes"):
        find_dataset(roots, name)


def test_no_datasets_says_where_to_put_images(tmp_path):
    with pytest.raises(InvalidParameterError, match="no datasets yet. Put a folder of images"):
        find_dataset([tmp_path], "x")


def test_defaults_come_from_the_cpu_demo_recipe(roots):
    dataset = find_dataset(roots, "shapes")
    params, config = pretrain_config({"dataset": "shapes"}, dataset)
    recipe = RECIPES["cpu-demo"]
    assert config.model == recipe.model and config.epochs == recipe.epochs
    assert config.optim.lr == recipe.optim.lr and config.norm_pix_loss == recipe.norm_pix_loss
    assert config.data.path == str(dataset.path) and config.output_dir == ""
    assert params["dataset"] == "shapes" and params["recipe"] == "cpu-demo" and params["num_images"] == 40


def test_request_fields_reach_the_config(roots):
    dataset = find_dataset(roots, "gradients")
    params, config = pretrain_config({
        "dataset": "gradients", "model": "mae_vit_tiny_patch16", "img_size": 32,
        "model_overrides": dict(TINY, patch_size=8), "mask_strategy": "block", "mask_ratio": 0.6,
        "epochs": 10, "batch_size": 4, "norm_pix_loss": True, "seed": 7, "blr": 1e-3,
        "device": "cpu",
    }, dataset)
    assert (config.mask_strategy, config.mask_ratio, config.epochs, config.batch_size) == ("block", 0.6, 10, 4)
    assert config.norm_pix_loss and config.seed == 7 and config.device == "cpu"
    assert config.data.img_size == 32 and config.model_overrides["patch_size"] == 8
    assert config.optim.blr == 1e-3 and config.optim.lr is None  # lr = blr * batch / 256
    assert config.optim.warmup_epochs == pytest.approx(RECIPES["cpu-demo"].optim.warmup_epochs * 10 / 20)
    total = (12 // 4) * 10
    assert params["estimated_steps"] == total
    assert config.snapshot_every == total // 8 and config.log_every == 1
    assert 1 <= config.ckpt_every_steps <= total // 20 + 1 and config.ckpt_every_minutes <= 2


def test_explicit_intervals_win(roots):
    _, config = pretrain_config({"dataset": "shapes", "log_every": 3, "snapshot_every": 5,
                                 "ckpt_every_steps": 2, "batch_size": 4}, find_dataset(roots, "shapes"))
    assert (config.log_every, config.snapshot_every, config.ckpt_every_steps) == (3, 5, 2)


@pytest.mark.parametrize("change, words", [
    ({"model": "vit_giant"}, ["unknown model preset 'vit_giant'", "mae_vit_tiny_patch16"]),
    ({"img_size": 40}, ["img_size 40x40 must be a positive multiple of patch_size 16"]),
    ({"batch_size": 64}, ["batch_size 64 is larger than the 40 images", "at most 40"]),
    ({"mask_strategy": "grid", "mask_ratio": 0.5}, ["grid masking", "always 0.75"]),
    ({"mask_strategy": "zigzag"}, ["unknown masking strategy 'zigzag'", "random"]),
    ({"mask_ratio": 1.2}, ["mask_ratio"]),
    ({"model_overrides": {"depth": 0}}, ["model_overrides ['depth'] not allowed"]),
    ({"model_overrides": {"evil": 3}}, ["model_overrides ['evil'] not allowed"]),
    ({"device": "tpu"}, ["device 'tpu'"]),
    ({"recipe": "fast"}, ["unknown recipe 'fast'", "cpu-demo"]),
    ({"epochs": 0}, ["epochs must be an integer in [1, 10000], got 0"]),
    ({"colour": "red"}, ["unknown job fields ['colour']"]),
    ({"gpus": 0}, ["gpus must be an integer in [1, 64], got 0"]),
    ({"gpus": 65}, ["gpus must be an integer in [1, 64], got 65"]),
    ({"gpus": 3, "batch_size": 16}, ["gpus 3 x batch_size 16 is more than the 40 images",
                                     "fewer gpus"]),
])
def test_bad_requests_say_what_to_change(roots, change, words):
    with pytest.raises(InvalidParameterError) as info:
        pretrain_config({"dataset": "shapes", **change}, find_dataset(roots, "shapes"))
    for word in words:
        assert word in str(info.value)


def test_every_problem_is_reported_at_once(roots):
    with pytest.raises(InvalidParameterError) as info:
        pretrain_config({"dataset": "shapes", "model": "nope", "batch_size": 500,
                         "mask_strategy": "grid", "mask_ratio": 0.3}, find_dataset(roots, "shapes"))
    text = str(info.value)
    assert "unknown model preset" in text and "batch_size 500" in text and "grid masking" in text


def test_submit_pretrain_queues_a_resolved_job(roots, tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    job = submit_pretrain(store, roots, {"dataset": "shapes", "epochs": 2, "batch_size": 4}, max_attempts=5)
    assert job.kind == "pretrain" and job.state == "queued" and job.max_attempts == 5
    assert job.config["epochs"] == 2 and job.config["data"]["path"].endswith("shapes")
    with pytest.raises(InvalidParameterError, match="dataset is required"):
        submit_pretrain(store, roots, {"epochs": 2})
    assert len(store.list_jobs()) == 1


def test_gpus_reach_the_job_and_split_the_steps(roots, tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    job = submit_pretrain(store, roots, {"dataset": "shapes", "epochs": 2, "batch_size": 8, "gpus": 2})
    assert job.gpus == 2 and job.params["gpus"] == 2
    assert job.params["estimated_steps"] == 4  # 40 images // (8 x 2 processes) x 2 epochs
    assert submit_pretrain(store, roots, {"dataset": "shapes", "epochs": 1}).gpus == 1


# ------------------------------------------------------------------ init_from (issue 17)
@pytest.fixture
def start(tmp_path):
    """A resolver that knows one small checkpoint (TINY_64) as "start"."""
    path = str(write_checkpoint(tmp_path, "start"))
    return lambda checkpoint_id: {"start": path}[checkpoint_id]


def test_init_from_takes_the_checkpoints_architecture_and_the_continue_lr(roots, start):
    params, config = pretrain_config({"dataset": "shapes", "init_from": "start", "batch_size": 4},
                                     find_dataset(roots, "shapes"), start)
    arch = {k: v for k, v in TINY_64.items() if k != "img_size"}
    assert {k: config.model_overrides[k] for k in arch} == arch and config.data.img_size == 64
    assert config.optim.lr == params["lr"] == CONTINUE_LR != RECIPES["cpu-demo"].optim.lr
    assert any(n.startswith(f"lr {CONTINUE_LR:g}: starting from a checkpoint") for n in params["notes"])


def test_a_jobs_blr_wins_over_the_continue_lr(roots, start):
    params, config = pretrain_config({"dataset": "shapes", "init_from": "start", "batch_size": 4,
                                      "blr": 2e-3}, find_dataset(roots, "shapes"), start)
    assert config.optim.blr == 2e-3 and config.optim.lr is None
    assert not any("continued-pretraining" in n for n in params["notes"])


def test_a_jobs_absolute_lr_wins_over_blr_and_the_continue_lr(roots, start):
    params, config = pretrain_config({"dataset": "shapes", "init_from": "start", "batch_size": 4,
                                      "lr": 3e-5, "blr": 2e-3}, find_dataset(roots, "shapes"), start)
    assert config.optim.lr == params["lr"] == 3e-5
    assert not any("continued-pretraining" in n for n in params["notes"])
    problems = field_problems({"dataset": "shapes", "lr": 0.0})
    assert any(p.startswith("lr") for p in problems), problems


def test_an_architecture_unlike_the_checkpoints_is_refused(roots, start):
    with pytest.raises(InvalidParameterError) as info:
        pretrain_config({"dataset": "shapes", "init_from": "start",
                         "model_overrides": {"decoder_depth": 3}}, find_dataset(roots, "shapes"), start)
    assert "init_from 'start' has decoder_depth=1 (asked: 3)" in str(info.value)
    assert "leave model and model_overrides out" in str(info.value)
