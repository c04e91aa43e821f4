"""Evaluation jobs (k-NN, linear probe, fine-tuning) end to end: POST /api/jobs, an in-process
worker, the result the job page and /analysis show; and the 422s for what cannot run."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app import Settings, create_app
from mae_service.jobs import Worker
from mae_tools.testing import write_checkpoint
from support.labelled_images import make_labelled
from support.train_helpers import make_images


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    make_labelled(root / "colours", per_class=10)  # two classes, every 5th image held out
    make_images(root / "unlabelled", count=8, size=40)
    return [root]


@pytest.fixture
def client(tmp_path, roots):
    write_checkpoint(tmp_path / "checkpoints", "mae-lab-default")
    settings = Settings(checkpoint_dir=tmp_path / "checkpoints", data_dir=tmp_path / "data",
                        data_roots=roots, job_max_attempts=1)
    with TestClient(create_app(settings)) as c:
        c.settings = settings
        yield c


def run_job(client, body):
    resp = client.post("/api/jobs", json=body)
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert job["kind"] == body["kind"] and job["state"] == "queued"
    assert Worker(client.settings.data_dir, lease_s=10).run_one() == "succeeded", \
        client.get(f"/api/jobs/{job['id']}").json()["error"]
    return job["id"], client.get(f"/api/jobs/{job['id']}/result").json()


def test_datasets_say_which_are_labelled(client):
    by_id = {d["id"]: d for d in client.get("/api/datasets").json()["datasets"]}
    assert by_id["colours"]["labelled"] and by_id["colours"]["classes"] == {"blue": 10, "red": 10}
    assert not by_id["unlabelled"]["labelled"] and by_id["unlabelled"]["num_classes"] == 0


def test_knn_job_separates_two_colours(client):
    job_id, result = run_job(client, {"kind": "knn", "checkpoint": "mae-lab-default",
                                      "dataset": "colours", "k": 5, "device": "cpu"})
    assert result["format"] == "mae-lab-eval/1" and result["protocol"] == "knn"
    assert (result["num_train"], result["num_val"]) == (16, 4)
    # even a random encoder separates solid blue from solid red: every held-out image right
    assert result["top1"] == 100.0 and "top5" not in result
    assert result["confusion"] == [[2, 0], [0, 2]]
    assert [c["accuracy"] for c in result["per_class"]] == [100.0, 100.0]
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["progress"] == 1.0 and job["params"]["k"] == 5
    page = client.get(f"/train/jobs/{job_id}")
    assert page.status_code == 200 and "eval_results.js" in page.text


def test_linprobe_and_finetune_jobs_run_end_to_end(client):
    _, lin = run_job(client, {"kind": "linprobe", "checkpoint": "mae-lab-default", "dataset": "colours",
                              "epochs": 5, "batch_size": 8, "warmup_epochs": 1, "blr": 0.1, "optimizer": "sgd", "device": "cpu"})
    assert [c["epoch"] for c in lin["curves"]] == [1, 2, 3, 4, 5] and lin["top1"] >= 75.0
    assert len(lin["confusion"]) == 2 and "5 epochs" in lin["schedule"]
    _, ft = run_job(client, {"kind": "finetune", "checkpoint": "mae-lab-default", "dataset": "colours",
                             "epochs": 2, "batch_size": 8, "warmup_epochs": 0, "tune_blocks": 1,
                             "mixup": 0, "cutmix": 0, "aa": "", "reprob": 0, "device": "cpu"})
    assert len(ft["curves"]) == 2 and all("top1" in c and "loss" in c for c in ft["curves"])
    assert "last 1 blocks tuned" in ft["schedule"] and len(ft["per_class"]) == 2
    rows = client.get("/api/eval-results").json()["results"]
    assert {r["protocol"] for r in rows} == {"linprobe", "finetune"}
    assert "Our evaluations" in client.get("/analysis").text


@pytest.mark.parametrize("body, words", [
    ({"kind": "knn", "checkpoint": "mae-lab-default", "dataset": "unlabelled"}, ["not labelled"]),
    ({"kind": "knn", "checkpoint": "nope", "dataset": "colours"}, ["unknown checkpoint 'nope'", "mae-lab-default"]),
    ({"kind": "knn", "checkpoint": "mae-lab-default", "dataset": "colours", "k": 0}, ["k must be"]),
    ({"kind": "knn", "checkpoint": "mae-lab-default", "dataset": "colours", "tune_blocks": 2},
     ["tune_blocks is not a knn field"]),
    ({"kind": "linprobe", "dataset": "colours"}, ["checkpoint is required"]),
    ({"kind": "finetune", "checkpoint": "mae-lab-default", "dataset": "colours", "epochs": "many"}, ["epochs"]),
    ({"kind": "cluster", "checkpoint": "mae-lab-default", "dataset": "colours"}, ["kind"]),
    ({"kind": "knn", "checkpoint": "mae-lab-default", "dataset": "colours", "max_attempts": 0},
     ["max_attempts must be"]),
])
def test_bad_evaluation_requests_are_422(client, body, words):
    resp = client.post("/api/jobs", json=body)
    assert resp.status_code == 422, resp.text
    for word in words:
        assert word in resp.json()["message"], resp.json()["message"]


def test_reconstruct_returns_attention_maps_over_the_visible_patches(client):
    from mae_tools.testing import png_bytes, synthetic_photo

    files = {"image": ("photo.png", png_bytes(synthetic_photo()), "image/png")}
    plain = client.post("/reconstruct", files=files, data={"seed": "3"})
    assert plain.status_code == 200 and plain.json().get("attention") is None
    body = client.post("/reconstruct", files=files, data={"seed": "3", "attention": "true"}).json()
    att, mask = body["attention"], body["mask"]
    assert att["num_heads"] == len(att["heads"]) >= 1 and len(att["mean"]) == len(mask)
    for grid in [att["mean"], *att["heads"]]:
        cells = [(v, m) for row, mrow in zip(grid, mask) for v, m in zip(row, mrow)]
        assert all((v is None) == (m == 1) for v, m in cells)  # removed patches: no attention
        assert max(v for v, _ in cells if v is not None) == 1.0
    assert body["panels"] == plain.json()["panels"]  # the reconstruction itself is unchanged


def test_eval_request_models_come_from_the_job_field_tables():
    from app.eval_jobs import EVAL_REQUESTS
    from mae_service.jobs.spec import JOB_FIELDS

    for kind, model in EVAL_REQUESTS.items():
        assert set(model.model_fields) == {f.name for f in JOB_FIELDS[kind]} | {"kind"}
        schema = model.model_json_schema()
        assert set(schema["required"]) == {"checkpoint", "dataset", "kind"}
    k = EVAL_REQUESTS["knn"].model_json_schema()["properties"]["k"]["anyOf"][0]
    assert (k["minimum"], k["maximum"]) == (1, 10_000)  # the FieldSpec's bounds, not retyped


def test_train_page_config_carries_the_eval_field_tables(client):
    import html
    import json
    import re

    from mae_service.jobs.spec import JOB_FIELDS

    page = client.get("/train").text
    raw = re.search(r'<script type="application/json" id="page-config">(.*?)</script>', page, re.S)
    cfg = json.loads(html.unescape(raw.group(1)))["eval"]
    assert cfg["kinds"] == ["knn", "linprobe", "finetune"]
    assert [d["id"] for d in cfg["datasets"]] == ["colours"]  # labelled ones only
    assert cfg["datasets"][0]["num_classes"] == 2 and "mae-lab-default" in cfg["checkpoints"]
    spec = {f.name: f for f in JOB_FIELDS["knn"]}["k"]
    assert cfg["fields"]["knn"]["k"] == spec.limits() and "checkpoint" not in cfg["fields"]["knn"]
    assert "tune_blocks" in cfg["fields"]["finetune"] and "tune_blocks" not in cfg["fields"]["knn"]
