"""/api/checkpoints and /models: the catalog beside present checkpoints, background downloads
from a local mirror, delete, upload (safe loading), export and the PSNR measured here."""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile

import pytest
from fastapi.testclient import TestClient

from app import Settings, create_app
from mae_core import create_model
from mae_core.checkpoint import catalog as C
from mae_core.checkpoint.export import export_huggingface
from mae_tools.testing import png_bytes, synthetic_photo, write_checkpoint
from support.file_server import file_host, malicious_pickle_bytes, official_pth_bytes


@pytest.fixture
def host():
    with file_host() as h:
        yield h


@pytest.fixture
def settings(tmp_path, host, monkeypatch):
    data = official_pth_bytes(tmp_path)
    host.add("visualize/tiny.pth", data)
    (tmp_path / "catalog.json").write_text(json.dumps([{
        "id": "tiny-official", "url": "visualize/tiny.pth", "md5_prefix": hashlib.md5(data).hexdigest()[:8],
        "description": "a tiny MAE in the official layout", "licence": "test licence",
        "good_for": "tests"}]))
    monkeypatch.setenv(C.CATALOG_ENV, str(tmp_path / "catalog.json"))
    monkeypatch.setenv(C.MIRROR_ENV, host.url)
    write_checkpoint(tmp_path / "checkpoints", "mae-lab-default")
    return Settings(checkpoint_dir=tmp_path / "checkpoints", data_dir=tmp_path / "data")


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def cards(client):
    return {c["id"]: c for c in client.get("/api/checkpoints").json()["checkpoints"]}


def wait_for_state(client, checkpoint_id, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        card = cards(client)[checkpoint_id]
        if card["state"] in wanted:
            return card
        time.sleep(0.05)
    raise AssertionError(f"{checkpoint_id} never reached {wanted}: {card}")


def test_the_list_has_the_embedded_default_first_and_the_catalog_with_licences(client):
    listed = client.get("/api/checkpoints").json()["checkpoints"]
    assert listed[0]["id"] == "mae-lab-default" and listed[0]["kind"] == "embedded"
    assert not listed[0]["deletable"] and listed[0]["can_reconstruct"]
    by_id = {c["id"]: c for c in listed}
    large = by_id["mae_visualize_vit_large"]
    assert large["kind"] == "catalog" and large["state"] == "available" and "CC-BY-NC 4.0" in large["licence"]
    encoder_only = by_id["mae_pretrain_vit_large"]
    assert encoder_only["has_decoder"] is False and "cannot reconstruct" in encoder_only["good_for"]
    assert by_id["hf-vit-mae-base"]["source"] == "huggingface"
    page = client.get("/models")
    assert page.status_code == 200 and "mae_visualize_vit_large" in page.text


def test_download_from_the_mirror_publishes_to_the_reconstruct_picker_then_delete(client):
    assert "tiny-official" not in {m["id"] for m in client.get("/api/models").json()["models"]}
    started = client.post("/api/checkpoints/tiny-official/download")
    assert started.status_code == 202 and started.json()["state"] in ("queued", "downloading")
    card = wait_for_state(client, "tiny-official", {"present", "failed"})
    assert card["state"] == "present" and card["kind"] == "downloaded" and card["licence"] == "test licence"
    models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    assert models["tiny-official"]["can_reconstruct"]
    rec = client.post("/reconstruct", files={"image": ("a.png", png_bytes(synthetic_photo()), "image/png")},
                      data={"model": "tiny-official", "seed": "1"})
    assert rec.status_code == 200 and rec.json()["model"] == "tiny-official"
    assert client.post("/api/checkpoints/tiny-official/download").status_code == 409
    assert client.delete("/api/checkpoints/tiny-official").status_code == 204
    assert "tiny-official" not in {m["id"] for m in client.get("/api/models").json()["models"]}
    assert cards(client)["tiny-official"]["state"] == "available"
    assert client.delete("/api/checkpoints/mae-lab-default").status_code == 409
    assert client.delete("/api/checkpoints/nope").status_code == 422



def test_upload_refuses_a_malicious_pickle_and_publishes_a_real_file(client, tmp_path):
    evil = malicious_pickle_bytes("/tmp/mae-upload-pwned")
    refused = client.post("/api/checkpoints", files={"file": ("evil.pth", evil)}, data={"name": "evil"})
    assert refused.status_code == 422 and "evil" not in cards(client)
    import os

    assert not os.path.exists("/tmp/mae-upload-pwned")
    good = official_pth_bytes(tmp_path, seed=5)
    made = client.post("/api/checkpoints", files={"file": ("mine.pth", good)}, data={"name": "my-mae"})
    assert made.status_code == 201, made.text
    assert made.json()["kind"] == "uploaded" and made.json()["can_reconstruct"]
    again = client.post("/api/checkpoints", files={"file": ("mine.pth", good)}, data={"name": "my-mae"})
    assert again.status_code == 422 and "exists already" in again.json()["message"]
    bad_name = client.post("/api/checkpoints", files={"file": ("x.pth", good)}, data={"name": "../x"})
    assert bad_name.status_code == 422
    not_weights = client.post("/api/checkpoints", files={"file": ("x.txt", b"hello")})
    assert not_weights.status_code == 422 and ".safetensors" in not_weights.json()["message"]



def test_a_safetensors_upload_needs_its_card_and_an_upload_can_be_deleted(client, tmp_path):
    """Head counts are not in the tensors: without its card the upload is refused, not guessed."""
    weights = write_checkpoint(tmp_path / "mine", "mine")
    alone = client.post("/api/checkpoints", files={"file": ("mine.safetensors", weights.read_bytes())},
                        data={"name": "mine"})
    assert alone.status_code == 422 and "card" in alone.json()["message"] and "mine" not in cards(client)
    made = client.post("/api/checkpoints", data={"name": "mine"},
                       files={"file": ("mine.safetensors", weights.read_bytes()),
                              "config": ("mine.json", weights.with_suffix(".json").read_bytes())})
    assert made.status_code == 201, made.text
    assert made.json()["kind"] == "uploaded" and made.json()["deletable"]
    assert client.delete("/api/checkpoints/mine").status_code == 204
    assert "mine" not in cards(client)


def test_a_hugging_face_upload_uses_its_config_json(client, tmp_path):
    model = create_model("mae_vit_tiny_patch16", img_size=64, embed_dim=64, depth=2, num_heads=4,
                         decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, norm_pix_loss=True)
    folder = export_huggingface(model, tmp_path / "hf")
    made = client.post("/api/checkpoints", data={"name": "hf-upload"},
                       files={"file": ("model.safetensors", (folder / "model.safetensors").read_bytes()),
                              "config": ("config.json", (folder / "config.json").read_bytes())})
    assert made.status_code == 201, made.text
    card = json.loads((tmp_path / "data" / "checkpoints" / "hf-upload.json").read_text())
    assert card["model_config"]["decoder_num_heads"] == 2 and card["norm_pix_loss"] is True
    assert card["source"]["layout"] == "huggingface"


def test_an_upload_over_the_limit_is_413_while_it_streams(tmp_path, settings):
    small = settings.model_copy(update={"max_checkpoint_upload_bytes": 1000})
    with TestClient(create_app(small)) as client:
        resp = client.post("/api/checkpoints", files={"file": ("big.pth", b"x" * 5000)})
    assert resp.status_code == 413 and "MAE_MAX_CHECKPOINT_UPLOAD_BYTES" in resp.json()["message"]


def test_export_downloads_load_and_measure_records_the_samples_psnr(client):
    hf = client.get("/api/checkpoints/mae-lab-default/export", params={"to": "hf"})
    assert hf.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(hf.content)).namelist()
    assert sorted(names) == ["mae-lab-default/config.json", "mae-lab-default/model.safetensors"]
    timm = client.get("/api/checkpoints/mae-lab-default/export", params={"to": "timm"})
    assert timm.status_code == 200 and timm.headers["content-disposition"].endswith('-timm.safetensors"')
    assert client.get("/api/checkpoints/mae-lab-default/export", params={"to": "onnx"}).status_code == 422
    measured = client.post("/api/checkpoints/mae-lab-default/measure").json()
    assert measured["recorded"] and measured["samples_quality"]["images"] == 6
    assert cards(client)["mae-lab-default"]["samples_quality"]["masked_psnr_db"] == \
        measured["samples_quality"]["masked_psnr_db"]


