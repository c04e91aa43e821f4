"""REST and pages for training jobs, against an in-process app and an in-process worker."""

from __future__ import annotations

from typing import get_args

import pytest
from fastapi.testclient import TestClient

from app import Settings, create_app
from app.registry import ModelRegistry
from app.routers.jobs import JobState
from mae_tools.testing import png_bytes, synthetic_photo, write_checkpoint
from mae_service.jobs import STATES, Worker
from support.jobs_helpers import job_request
from support.train_helpers import make_images


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    make_images(root / "shapes", count=32, size=40)
    make_images(root / "gradients", count=16, size=40, seed=4)
    return [root]


@pytest.fixture
def settings(tmp_path, roots) -> Settings:
    write_checkpoint(tmp_path / "checkpoints", "mae-lab-default")
    return Settings(checkpoint_dir=tmp_path / "checkpoints", data_dir=tmp_path / "data",
                    data_roots=roots, job_max_attempts=4)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def backend_client(tmp_path, roots, store_url):
    """A client whose job store is ``store_url``'s backend (SQLite in the data folder, or
    PostgreSQL through ``jobs_url``)."""
    write_checkpoint(tmp_path / "checkpoints", "mae-lab-default")
    pg = store_url.startswith("postgresql://")
    settings = Settings(checkpoint_dir=tmp_path / "checkpoints", data_dir=tmp_path / "data",
                        data_roots=roots, job_max_attempts=4, jobs_url=store_url if pg else None)
    with TestClient(create_app(settings)) as c:
        yield c
    # the PostgreSQL store keeps no SQLite file beside the runs
    assert (tmp_path / "data" / "jobs" / "jobs.sqlite").is_file() != pg


def assert_422(resp, *words):
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "invalid_parameter" and len(body["message"]) > 15
    for word in words:
        assert word in body["message"], body["message"]
    return body


def test_datasets_lists_image_folders(client, roots):
    body = client.get("/api/datasets").json()
    assert body["roots"] == [str(roots[0])]
    assert [(d["id"], d["num_images"]) for d in body["datasets"]] == [("gradients", 16), ("shapes", 32)]


@pytest.mark.parametrize("body, words", [
    ({}, ["dataset: Field required"]),
    ({"dataset": "elsewhere"}, ["unknown dataset 'elsewhere'", "gradients, shapes"]),
    ({"dataset": "../shapes"}, ["unknown dataset '../shapes'"]),
    ({"dataset": "shapes", "mask_ratio": 1.5}, ["mask_ratio", "strictly between 0 and 1"]),
    ({"dataset": "shapes", "epochs": 0}, ["epochs", "greater than or equal to 1"]),
    ({"dataset": "shapes", "batch_size": "many"}, ["batch_size"]),
    ({"dataset": "gradients", "batch_size": 32}, ["larger than the 16 images", "at most 16"]),
    ({"dataset": "shapes", "mask_strategy": "grid", "mask_ratio": 0.6}, ["always 0.75"]),
    ({"dataset": "shapes", "model": "resnet50"}, ["unknown model preset 'resnet50'"]),
    ({"dataset": "shapes", "img_size": 100}, ["multiple of patch_size 16"]),
    ({"dataset": "shapes", "output_dir": "/etc"}, ["output_dir", "Extra inputs"]),
])
def test_bad_submissions_are_422_with_what_to_change(client, body, words):
    assert_422(client.post("/api/jobs", json=body), *words)
    assert client.get("/api/jobs").json()["jobs"] == []


def test_field_errors_name_the_field(client):
    body = assert_422(client.post("/api/jobs", json={"dataset": "shapes", "epochs": -1, "seed": -5}))
    assert {f["field"] for f in body["fields"]} == {"epochs", "seed"}


def test_submit_list_get_cancel_retry(backend_client):
    client = backend_client
    resp = client.post("/api/jobs", json=job_request("shapes", epochs=2))
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert job["state"] == "queued" and job["max_attempts"] == 4 and job["params"]["dataset"] == "shapes"
    assert job["links"]["page"] == f"/train/jobs/{job['id']}"
    assert [e["event"] for e in job["events"]] == ["submitted"]

    listing = client.get("/api/jobs").json()
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]
    assert listing["counts"]["queued"] == 1 and listing["workers"] == []
    assert client.get("/api/jobs", params={"state": "running"}).json()["jobs"] == []
    assert_422(client.get("/api/jobs", params={"state": "sleeping"}), "state")

    assert client.get(f"/api/jobs/{job['id']}").json()["id"] == job["id"]
    resp = client.post(f"/api/jobs/{job['id']}/retry")
    assert resp.status_code == 409 and "only failed or cancelled" in resp.json()["message"]
    assert client.post(f"/api/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    again = client.post(f"/api/jobs/{job['id']}/retry").json()
    assert again["state"] == "queued" and [e["event"] for e in again["events"]][-2:] == ["cancelled", "retried"]

    for path in ("/api/jobs/job-nope", "/api/jobs/job-nope/metrics", "/api/jobs/job-nope/logs"):
        resp = client.get(path)
        assert resp.status_code == 404 and "no job with id 'job-nope'" in resp.json()["message"]
    assert client.post("/api/jobs/job-nope/cancel").status_code == 404


def test_a_trained_job_shows_metrics_snapshots_logs_and_reconstructs_without_restart(client, settings):
    job = client.post("/api/jobs", json=job_request("shapes", epochs=3, snapshot_every=4)).json()
    assert job["id"] not in {m["id"] for m in client.get("/api/models").json()["models"]}
    assert Worker(settings.data_dir, lease_s=5).run_one() == "succeeded"

    done = client.get(f"/api/jobs/{job['id']}").json()
    assert done["state"] == "succeeded" and done["progress"] == 1.0 and done["checkpoint"] == job["id"]
    metrics = client.get(f"/api/jobs/{job['id']}/metrics").json()
    assert [m["step"] for m in metrics["metrics"]] == list(range(1, 13))
    assert {"loss", "lr", "elapsed_s"} <= set(metrics["metrics"][0])
    later = client.get(f"/api/jobs/{job['id']}/metrics", params={"since_step": 10}).json()
    assert [m["step"] for m in later["metrics"]] == [11, 12]
    snap = metrics["snapshots"][-1]
    image = client.get(snap["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert client.get(f"/api/jobs/{job['id']}/snapshots/99999").status_code == 404
    logs = client.get(f"/api/jobs/{job['id']}/logs", params={"lines": 5}).json()
    assert len(logs["lines"]) == 5 and "succeeded" in logs["lines"][-1]

    models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    assert models[job["id"]]["can_reconstruct"]
    resp = client.post("/reconstruct", files={"image": ("p.png", png_bytes(synthetic_photo()), "image/png")},
                       data={"model": job["id"], "seed": "1"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == job["id"] and resp.json()["grid"] == [4, 4]


def test_train_pages_render(client):
    page = client.get("/train")
    assert page.status_code == 200
    html = page.text
    assert 'href="/train" aria-current="page"' in html
    for needle in ('id="job-form"', 'name="dataset"', '<option value="shapes"', 'name="model"',
                   'name="mask_strategy"', 'name="mask_ratio"', 'name="epochs"', 'name="batch_size"',
                   'name="norm_pix_loss"', 'name="seed"', "js/train.js", "css/train.css"):
        assert needle in html, needle
    job = client.post("/api/jobs", json=job_request("shapes", epochs=2)).json()
    page = client.get(f"/train/jobs/{job['id']}")
    assert page.status_code == 200 and job["id"] in page.text and "/vendor/plotly.min.js" in page.text
    assert client.get("/train/jobs/job-nope").status_code == 404
    assert client.get("/static/js/train.js").status_code == 200
    assert client.get("/static/css/train.css").status_code == 200


def test_train_page_without_datasets_says_where_to_put_images(tmp_path):
    settings = Settings(checkpoint_dir=tmp_path / "ck", data_dir=tmp_path / "data",
                        data_roots=[tmp_path / "nothing-here"])
    with TestClient(create_app(settings)) as client:
        html = client.get("/train").text
    assert 'data-kind="no-datasets"' in html and str(tmp_path / "nothing-here") in html


def test_reading_never_creates_the_data_folder(tmp_path, roots):
    settings = Settings(checkpoint_dir=tmp_path / "ck", data_dir=tmp_path / "data", data_roots=roots)
    with TestClient(create_app(settings)) as client:
        assert client.get("/train").status_code == 200
        assert client.get("/api/jobs").json() == {
            "jobs": [], "counts": {s: 0 for s in STATES}, "workers": []}
        for resp in (client.get("/api/jobs/job-x"), client.post("/api/jobs/job-x/cancel"),
                     client.get("/train/jobs/job-x")):
            assert resp.status_code == 404 and "no job has been submitted yet" in resp.json()["message"]
        assert not (tmp_path / "data").exists()
        assert client.post("/api/jobs", json=job_request("shapes", epochs=1)).status_code == 201
    assert (tmp_path / "data" / "jobs" / "jobs.sqlite").is_file()


def test_job_state_query_values_match_the_store():
    assert get_args(JobState) == STATES


def test_registry_lists_trained_checkpoints_beside_its_folder(tmp_path):
    write_checkpoint(tmp_path / "main", "shared-id", seed=1)
    write_checkpoint(tmp_path / "trained", "shared-id", seed=2)
    write_checkpoint(tmp_path / "trained", "job-1", seed=3)
    registry = ModelRegistry(tmp_path / "main", "shared-id", extra_folders=[tmp_path / "trained"])
    infos = registry.checkpoints()
    assert sorted(infos) == ["job-1", "shared-id"]
    assert infos["shared-id"].path.parent == tmp_path / "main"  # the configured folder wins
    write_checkpoint(tmp_path / "trained", "job-2", seed=4)
    assert "job-2" in registry.checkpoints()  # a new file is seen without a restart


def test_logs_show_a_long_last_line_instead_of_nothing(client, settings):
    """The last 64 KiB of a log without a newline is one cut line: shown, marked as cut."""
    from mae_core.runs import RunFolder

    job = client.post("/api/jobs", json=job_request("shapes", epochs=1)).json()
    log = RunFolder(settings.data.run_dir(job["id"])).log_path
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("first line\n" + "x" * 100_000)
    lines = client.get(f"/api/jobs/{job['id']}/logs").json()["lines"]
    assert len(lines) == 1 and lines[0].startswith("…x") and len(lines[0]) > 60_000
