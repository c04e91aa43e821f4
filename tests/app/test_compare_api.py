"""POST /reconstruct/compare: one mask drawn once, shared by 2-4 models; clear 422s otherwise."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app import Settings, create_app
from mae_core.masking import MaskRequest
from mae_tools.testing import png_bytes, synthetic_photo, write_checkpoint


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder: Path = tmp_path_factory.mktemp("compare") / "checkpoints"
    write_checkpoint(folder, "mae-lab-default")  # 64 px, 16 px patches: a 4x4 grid
    write_checkpoint(folder, "other", seed=1)  # same grid, other weights
    write_checkpoint(folder, "third", seed=2)
    write_checkpoint(folder, "encoder-only", decoder=False)
    write_checkpoint(folder, "big", size=128)  # an 8x8 grid
    with TestClient(create_app(Settings(checkpoint_dir=folder))) as c:
        yield c


def compare(client, models, **fields):
    files = {"image": ("photo.png", png_bytes(synthetic_photo()), "image/png")}
    data = {"model": list(models), **{k: str(v) for k, v in fields.items()}}
    return client.post("/reconstruct/compare", files=files, data=data)


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_every_model_gets_the_same_mask_and_its_own_psnr(client):
    resp = compare(client, ["mae-lab-default", "other", "third"], mask_ratio=0.75, seed=5)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [row["model"] for row in body["rows"]] == ["mae-lab-default", "other", "third"]
    assert body["seed"] == 5 and body["grid"] == [4, 4] and body["mask_ratio"] == 0.75
    # the mask is the one a sampled request with this seed draws on the 4x4 grid
    expected, _ = MaskRequest.sampled(0.75, "random", 5).on_grid((4, 4))
    assert body["mask"] == expected.explicit.tolist()
    maskeds = [decode(row["panels"]["masked"]) for row in body["rows"]]
    assert all((m == maskeds[0]).all() for m in maskeds)  # same removed patches everywhere
    recons = [decode(row["panels"]["reconstruction"]) for row in body["rows"]]
    assert not (recons[0] == recons[1]).all()  # different weights, different guesses
    for row in body["rows"]:
        assert set(row["panels"]) == {"masked", "reconstruction", "pasted"}
        assert decode(row["panels"]["pasted"]).shape == (64, 64, 3)
        assert row["metrics"]["masked_psnr"] > 0 and row["metrics"]["masked_mse"] > 0
    psnrs = {row["metrics"]["masked_psnr"] for row in body["rows"]}
    assert len(psnrs) == 3


def test_a_row_matches_a_single_reconstruction_with_the_same_seed(client):
    body = compare(client, ["other", "mae-lab-default"], seed=11).json()
    files = {"image": ("photo.png", png_bytes(synthetic_photo()), "image/png")}
    single = client.post("/reconstruct", files=files, data={"model": "other", "seed": "11"}).json()
    assert single["mask"] == body["mask"]
    assert body["rows"][0]["metrics"]["masked_psnr"] == pytest.approx(
        single["metrics"]["masked_psnr"], abs=1e-4)


def test_an_explicit_mask_is_used_as_sent(client):
    mask = [[1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0]]
    body = compare(client, ["mae-lab-default", "other"], mask=json.dumps(mask)).json()
    assert body["mask"] == mask and body["seed"] is None and body["strategy"] == "custom"


@pytest.mark.parametrize("models, words", [
    (["mae-lab-default"], "2 to 4 models"),
    (["mae-lab-default", "other", "third", "big", "encoder-only"], "got 5"),
    (["other", "other"], "more than once"),
    (["", "mae-lab-default"], "checkpoint id of 1 to 200"),
    (["mae-lab-default", "nope"], "nope"),
    (["mae-lab-default", "encoder-only"], "no decoder"),
    (["mae-lab-default", "big"], "different patch grids"),
])
def test_bad_model_lists_are_422_saying_why(client, models, words):
    resp = compare(client, models, seed=1)
    assert resp.status_code == 422, resp.text
    assert words in resp.json()["message"]


def test_bad_mask_fields_are_checked_as_for_reconstruct(client):
    resp = compare(client, ["mae-lab-default", "other"], mask_ratio="0.9999999", seed=1)
    assert resp.status_code == 422 and "removes every patch" in resp.json()["message"]
    resp = compare(client, ["mae-lab-default", "other"], mask="[[1,0]]")
    assert resp.status_code == 422 and "4x4" in resp.json()["message"]
