"""POST /reconstruct's mask fields: checked once, with messages about the ratio at this image size,
the requested and achieved ratios in the reply, and batching by the exact request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import Settings, create_app
from app.batcher import Job
from mae_core.masking import MaskRequest
from mae_tools.testing import png_bytes, synthetic_photo, write_checkpoint


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder: Path = tmp_path_factory.mktemp("maskfields") / "checkpoints"
    write_checkpoint(folder, "mae-lab-default")  # 64 px, 16 px patches: a 4x4 grid
    with TestClient(create_app(Settings(checkpoint_dir=folder))) as c:
        yield c


def post(client, **fields):
    files = {"image": ("photo.png", png_bytes(synthetic_photo()), "image/png")}
    return client.post("/reconstruct", files=files, data={k: str(v) for k, v in fields.items()})


def test_a_ratio_that_removes_no_patch_is_422_with_the_minimum(client):
    resp = post(client, mask_ratio="1e-300", seed=1)
    assert resp.status_code == 422, resp.text
    message = resp.json()["message"]
    assert "removes no patch" in message and "4x4" in message
    assert "at least 0.0625" in message  # 1/16: one patch of the 4x4 grid
    assert post(client, mask_ratio="0.0625", seed=1).json()["mask_ratio"] == pytest.approx(1 / 16)


def test_a_ratio_that_removes_every_patch_is_422_with_the_maximum(client):
    resp = post(client, mask_ratio="0.9999999", seed=1)
    assert resp.status_code == 422, resp.text
    message = resp.json()["message"]
    assert "explicit mask" not in message  # none was sent
    assert "removes every patch" in message and "at most 0.9375" in message
    assert post(client, mask_ratio="0.9375", seed=1).json()["mask_ratio"] == pytest.approx(15 / 16)


def test_reply_reports_requested_and_achieved_ratio(client):
    body = post(client, mask_ratio=0.8, seed=3).json()
    assert body["requested_mask_ratio"] == 0.8
    assert body["mask_ratio"] == pytest.approx(13 / 16)  # keeps int(16 * 0.2) = 3 patches
    mask = [[1, 1, 0, 1]] * 4
    files = {"image": ("photo.png", png_bytes(synthetic_photo()), "image/png")}
    explicit = client.post("/reconstruct", files=files, data={"mask": json.dumps(mask)}).json()
    assert explicit["requested_mask_ratio"] is None and explicit["mask_ratio"] == 0.75


def test_jobs_group_by_the_exact_request():
    def key(ratio: float) -> object:
        return Job(model_id="m", image=None, request=MaskRequest.sampled(ratio, "random", 1)).key()

    assert key(0.75) == key(0.75)
    assert key(0.75) != key(0.75 + 1e-12)  # rounding to 9 digits used to merge these
    assert key(0.75) != key(0.5)
