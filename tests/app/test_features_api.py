"""/api/features: embed a labelled dataset, its 2-D map with one point per image, thumbnails,
nearest neighbours of an upload; names and indices only, never host paths."""

from __future__ import annotations

import io
import time

import pytest
from fastapi.testclient import TestClient

from app import Settings, create_app
from mae_tools.testing import write_checkpoint
from support.labelled_images import make_labelled


@pytest.fixture
def client(tmp_path):
    write_checkpoint(tmp_path / "checkpoints", "mae-lab-default")
    make_labelled(tmp_path / "roots" / "colours", per_class=4, classes=("blue", "red", "green"))
    settings = Settings(checkpoint_dir=tmp_path / "checkpoints", data_dir=tmp_path / "data",
                        data_roots=[tmp_path / "roots"])
    with TestClient(create_app(settings)) as c:
        yield c


def embedded(client, **extra):
    params = {"checkpoint": "mae-lab-default", "dataset": "colours", "pool": "cls", **extra}
    started = client.post("/api/features", json={k: params[k] for k in ("checkpoint", "dataset", "pool")})
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get("/api/features", params=params).json()
        if body["state"] == "ready":
            return body
        assert body["state"] in ("computing", "not_computed"), body
        time.sleep(0.05)
    raise AssertionError("embedding never finished")


def test_the_map_has_one_point_per_image_with_its_class(client, tmp_path):
    body = embedded(client)
    assert body["num_images"] == 12 and len(body["points"]) == 12
    assert body["classes"] == ["blue", "green", "red"] and body["projection"]["method"] == "pca"
    assert {p["class"] for p in body["points"]} == {"blue", "green", "red"}
    assert "cls token" in body["features"]
    assert str(tmp_path) not in str(body)  # relative names only
    mean = embedded(client, pool="mean")
    assert "mean" in mean["features"] and len(mean["points"]) == 12
    page = client.get("/features")
    assert page.status_code == 200 and "colours" in page.text


def test_thumbnails_and_nearest_neighbours_of_an_upload(client, tmp_path):
    embedded(client)
    thumb = client.get("/api/features/thumbnail", params={"dataset": "colours", "index": 0})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert client.get("/api/features/thumbnail", params={"dataset": "colours", "index": 99}).status_code == 404
    query = (tmp_path / "roots" / "colours" / "red" / "red-002.png").read_bytes()
    found = client.post("/api/features/neighbours", files={"image": ("q.png", query, "image/png")},
                        data={"checkpoint": "mae-lab-default", "dataset": "colours", "k": "3"}).json()
    top = found["neighbours"][0]
    assert top["file"] == "red/red-002.png" and top["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert [n["class"] for n in found["neighbours"]] == ["red"] * 3


def test_unknown_names_are_422_and_neighbours_before_embedding_409(client):
    assert client.post("/api/features", json={"checkpoint": "nope", "dataset": "colours"}).status_code == 422
    assert client.post("/api/features", json={"checkpoint": "mae-lab-default", "dataset": "nope"}).status_code == 422
    assert client.post("/api/features", json={"checkpoint": "mae-lab-default", "dataset": "colours",
                                              "pool": "max"}).status_code == 422
    resp = client.post("/api/features/neighbours", files={"image": ("q.png", io.BytesIO(b"x"), "image/png")},
                       data={"checkpoint": "mae-lab-default", "dataset": "colours"})
    assert resp.status_code == 409 and "embed the dataset first" in resp.json()["message"]
