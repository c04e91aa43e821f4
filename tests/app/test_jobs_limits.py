"""Job requests at the edge: cost limits (issue 15 item 1), strict numbers (items 6, 15), damaged
rows (item 13), the capped default batch (issue 13) and init_from (issue 17)."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file

from app import Settings, create_app
from mae_core.model import create_model
from mae_core.train.config import RECIPES
from mae_core.train.cost import CostLimits, estimate
from mae_core.train.fields import TRAIN_FIELDS
from mae_core.train.init import CONTINUE_LR, continue_lr_note, init_from_checkpoint
from mae_core.errors import TrainingError
from mae_service.jobs import Worker
from mae_tools.testing import TINY_64, write_checkpoint
from support.jobs_helpers import job_request
from support.train_helpers import make_images


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    make_images(root / "shapes", count=24, size=64)
    return [root]


@pytest.fixture
def settings(tmp_path, roots) -> Settings:
    write_checkpoint(tmp_path / "checkpoints", "mae-lab-default")
    write_checkpoint(tmp_path / "checkpoints", "encoder-only", decoder=False)
    return Settings(checkpoint_dir=tmp_path / "checkpoints", data_dir=tmp_path / "data",
                    data_roots=roots, job_max_attempts=2)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def refused(resp, *words):
    assert resp.status_code == 422, resp.text
    for word in words:
        assert word in resp.json()["message"], resp.json()["message"]


# ------------------------------------------------------------------ cost limits (issue 15 item 1)
@pytest.mark.parametrize("change, limit", [
    ({"model_overrides": {"depth": 1_000_000}}, "depth"),  # the field bound refuses it first
    ({"model_overrides": {"embed_dim": 4096, "depth": 64, "num_heads": 32}}, "MAE_JOB_MAX_PARAMS"),
    ({"img_size": 1024, "model_overrides": {"patch_size": 2}}, "MAE_JOB_MAX_TOKENS"),
    ({"model": "mae_vit_huge_patch14", "img_size": 1022}, "MAE_JOB_MAX_TOKENS"),
    ({"epochs": 100_000, "batch_size": 1}, "less than or equal to 10000"),
])
def test_attacks_are_refused_naming_the_limit(client, change, limit):
    refused(client.post("/api/jobs", json={"dataset": "shapes", "init_from": "", **change}), limit)
    assert client.get("/api/jobs").json()["jobs"] == []


def client_with(settings, **env):
    """A client whose Settings were read with ``env`` set (the limits are Settings fields)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        fresh = Settings(**{k: getattr(settings, k) for k in
                            ("checkpoint_dir", "data_dir", "data_roots", "job_max_attempts")})
    return TestClient(create_app(fresh))


def test_steps_limit_names_itself_and_the_value(settings):
    with client_with(settings, MAE_JOB_MAX_STEPS="1000") as client:
        refused(client.post("/api/jobs", json=job_request("shapes", epochs=1000, batch_size=1)),
                "24,000 optimizer steps", "MAE_JOB_MAX_STEPS=1,000")


def test_flops_limit_names_itself(settings):
    with client_with(settings, MAE_JOB_MAX_FLOPS="1e14") as client:
        refused(client.post("/api/jobs", json={"dataset": "shapes", "init_from": "", "epochs": 100,
                                               "batch_size": 8, "model": "mae_vit_huge_patch14"}),
                "training FLOPs", "MAE_JOB_MAX_FLOPS=1e+14")


def test_serve_flags_lower_the_job_limits(settings, monkeypatch):
    """``mae serve --job-max-*`` set the same Settings fields; a job past one is refused naming it."""
    from mae_cli import build_parser
    from mae_cli.serve import settings_from_args

    monkeypatch.setenv("MAE_JOB_MAX_TOKENS", "4096")  # the flag wins over the environment
    args = build_parser().parse_args(["serve", "--job-max-tokens", "8", "--job-max-params", "5000000",
                                      "--checkpoint-dir", str(settings.checkpoint_dir),
                                      "--data-dir", str(settings.data_dir)])
    served = settings_from_args(args).model_copy(update={"data_roots": settings.data_roots})
    assert served.cost_limits.max_tokens == 8 and served.job_max_params == 5_000_000
    with TestClient(create_app(served)) as client:
        refused(client.post("/api/jobs", json=job_request("shapes", epochs=1)),
                "tokens (patches) per image", "MAE_JOB_MAX_TOKENS=8")
        base = job_request("shapes", epochs=1, model="mae_vit_base_patch16", model_overrides={},
                           img_size=32)  # 4 tokens at patch 16: only the parameters are over
        refused(client.post("/api/jobs", json=base), "parameters", "MAE_JOB_MAX_PARAMS=5,000,000")
        assert client.get("/api/jobs").json()["jobs"] == []
    with pytest.raises(ValueError):
        Settings(job_max_flops=float("inf"))


@pytest.mark.parametrize("model", ["mae_vit_base_patch16", "mae_vit_large_patch16", "mae_vit_huge_patch14"])
def test_the_papers_presets_and_schedules_are_admitted(model):
    config = RECIPES["paper"].replace(model=model, epochs=1600)
    cost = estimate(config, 1_281_167)  # ImageNet-1k
    assert CostLimits().problems(cost) == [], cost
    assert CostLimits(max_params=cost.params - 1).problems(cost)


def test_the_parameter_estimate_is_exact():
    for name in ("mae_vit_tiny_patch16", "mae_vit_base_patch16"):
        model = create_model(name)
        from mae_core.train.cost import model_params
        assert model_params(model.config) == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_every_training_field_is_bounded():
    for spec in TRAIN_FIELDS:
        if spec.type in (int, float):
            assert spec.minimum is not None and spec.maximum is not None, spec.name


# ------------------------------------------------------------------ strict numbers (items 6, 15)
@pytest.mark.parametrize("raw", ['{"dataset": "shapes", "warmup_epochs": Infinity}',
                                 '{"dataset": "shapes", "mask_ratio": NaN}',
                                 '{"dataset": "shapes", "model_overrides": {"depth": -Infinity}}'])
def test_non_finite_numbers_are_refused(client, raw):
    refused(client.post("/api/jobs", content=raw, headers={"content-type": "application/json"}),
            "JSON numbers must be finite")


@pytest.mark.parametrize("field", ["warmup_epochs", "epochs", "seed", "blr"])
def test_booleans_are_not_numbers(client, field):
    refused(client.post("/api/jobs", json={"dataset": "shapes", field: False}), field)


def test_options_lists_both_methods(client):
    resp = client.options("/api/jobs")
    assert resp.status_code == 204
    assert {"GET", "POST"} <= {m.strip() for m in resp.headers["allow"].split(",")}


def test_a_damaged_row_is_shown_and_the_rest_kept(client, settings):
    good = client.post("/api/jobs", json=job_request("shapes", epochs=1)).json()["id"]
    bad = client.post("/api/jobs", json=job_request("shapes", epochs=1)).json()["id"]
    other = client.post("/api/jobs", json=job_request("shapes", epochs=1)).json()["id"]
    with sqlite3.connect(settings.data.store) as db:
        db.execute("UPDATE jobs SET params = ? WHERE id = ?", ("{not json", bad))
        db.execute("UPDATE jobs SET params = ? WHERE id = ?", ('{"warmup_epochs": Infinity}', other))
    jobs = {j["id"]: j for j in client.get("/api/jobs").json()["jobs"]}
    assert jobs[good]["damaged"] is None and jobs[good]["params"]["dataset"] == "shapes"
    assert "unreadable" in jobs[bad]["damaged"] and "non-finite" in jobs[other]["damaged"]
    page = client.get("/train")
    assert page.status_code == 200 and "Infinity" not in page.text
    assert client.get(f"/train/jobs/{other}").status_code == 200


# ------------------------------------------------------------------ default batch (issue 13)
def test_the_readme_example_caps_the_default_batch(client):
    resp = client.post("/api/jobs", json={"dataset": "shapes", "epochs": 1, "init_from": ""})
    assert resp.status_code == 201, resp.text
    params = resp.json()["params"]
    assert params["batch_size"] == 24 and "batch_size capped to 24" in params["notes"][0]
    refused(client.post("/api/jobs", json={"dataset": "shapes", "batch_size": 32}), "at most 24")


# ------------------------------------------------------------------ init_from (issue 17)
def test_init_from_loads_every_weight_and_refuses_other_architectures(tmp_path):
    path = write_checkpoint(tmp_path, "start", seed=3)
    model = create_model("mae_vit_tiny_patch16", **TINY_64)
    init_from_checkpoint(model, path)
    saved = load_file(str(path))
    own = model.state_dict()
    assert all(torch.equal(own[k], v.float()) for k, v in saved.items())
    with pytest.raises(TrainingError, match="architecture differs"):
        init_from_checkpoint(create_model("mae_vit_tiny_patch16", img_size=64), path)
    with pytest.raises(TrainingError, match="no decoder"):
        init_from_checkpoint(model, write_checkpoint(tmp_path, "enc", decoder=False))


def test_an_init_from_job_trains_and_publishes(client, settings):
    refused(client.post("/api/jobs", json={"dataset": "shapes", "init_from": "nope"}), "nope")
    refused(client.post("/api/jobs", json={"dataset": "shapes", "init_from": "encoder-only"}), "no decoder")
    body = {"dataset": "shapes", "epochs": 1, "batch_size": 8, "device": "cpu", "blr": 1e-6,
            "init_from": "mae-lab-default", "log_every": 1, "snapshot_every": 1000}
    job = client.post("/api/jobs", json=body).json()
    assert job["params"]["init_from"] == "mae-lab-default" and job["params"]["img_size"] == 64
    assert Worker(settings.data_dir, lease_s=5).run_one() == "succeeded"
    done = client.get(f"/api/jobs/{job['id']}").json()
    assert done["checkpoint"] == job["id"] and done["step"] == 3
    start = load_file(str(settings.checkpoint_dir / "mae-lab-default.safetensors"))
    trained = load_file(str(settings.data.checkpoints / f"{job['id']}.safetensors"))
    torch.manual_seed(12345)  # write_checkpoint drew the checkpoint with seed 0
    scratch = create_model("mae_vit_tiny_patch16", **TINY_64).state_dict()
    key = "blocks.0.attn.qkv.weight"
    # three steps at a tiny lr: the published model is the checkpoint's, barely moved
    assert (trained[key] - start[key]).abs().max() < 1e-3 < (trained[key] - scratch[key]).abs().max()
    models = {m["id"] for m in client.get("/api/models").json()["models"]}
    assert job["id"] in models


def test_the_train_form_takes_the_continue_lr_from_page_config(client):
    page = client.get("/train").text
    config = json.loads(re.search(r'<script type="application/json" id="page-config">(.*?)</script>',
                                  page, re.S).group(1))
    assert config["continueLr"]["lr"] == CONTINUE_LR
    assert config["continueLr"]["notes"] == {n: continue_lr_note(r) for n, r in RECIPES.items()}
    assert 'id="help-lr"' in page and '<option value="mae-lab-default" selected>' in page
    script = client.get("/static/js/train.js").text
    assert "config.continueLr" in script and str(CONTINUE_LR) not in script  # no literal lr
