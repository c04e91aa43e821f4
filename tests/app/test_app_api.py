"""REST API of the web app, against tiny real checkpoints created in each test (lifespan runs)."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app import Settings, create_app
from app.schemas import ReconstructResponse
from mae_tools.testing import png_bytes, synthetic_photo, write_checkpoint
from support.app_helpers import gate_worker, wait_for

GRID = 4  # the 64 px test model: 4x4 patches of 16 px
DEFAULT = "mae-lab-default"


@pytest.fixture
def ckpt_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "checkpoints"
    write_checkpoint(folder, DEFAULT)
    return folder


@pytest.fixture
def photo_png() -> bytes:
    return png_bytes(synthetic_photo())


@contextmanager
def running(folder: Path, **overrides):
    app = create_app(Settings(checkpoint_dir=folder, **overrides))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One server for the tests that do not change the folder or the settings."""
    folder = tmp_path_factory.mktemp("shared") / "checkpoints"
    write_checkpoint(folder, DEFAULT)
    with running(folder) as c:
        yield c


def post(client, image: bytes | None = None, *, filename="photo.png", content_type="image/png",
         headers=None, **fields):
    data = {k: (json.dumps(v) if k == "mask" and not isinstance(v, str) else str(v))
            for k, v in fields.items()}
    files = {"image": (filename, image if image is not None else png_bytes(synthetic_photo()), content_type)}
    return client.post("/reconstruct", files=files, data=data, headers=headers or {})


def decode_panel(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def assert_error(resp, status: int, kind: str, *words: str):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == kind and body["status"] == status
    assert len(body["message"]) > 15
    for word in words:
        assert word in body["message"], body["message"]
    return body


# ---------------------------------------------------------------------------- success paths
def test_reconstruct_returns_four_panels_mask_and_metrics(client, photo_png):
    resp = post(client, photo_png, mask_ratio=0.75, seed=7)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    ReconstructResponse.model_validate(body)  # the route encodes JSON itself; it must still match
    assert body["compute_dtype"] in ("fp32", "bf16")
    assert body["model"] == DEFAULT and body["seed"] == 7 and body["strategy"] == "random"
    assert body["grid"] == [GRID, GRID] and body["patch_size"] == 16 and body["image_size"] == [64, 64]
    assert set(body["panels"]) == {"original", "masked", "reconstruction", "pasted"}
    for b64 in body["panels"].values():
        assert decode_panel(b64).shape == (64, 64, 3)
    mask = np.array(body["mask"])
    assert mask.shape == (GRID, GRID) and set(np.unique(mask)) <= {0, 1}
    assert mask.sum() == 12  # keeps int(16 * 0.25) = 4 patches, as the official code
    assert body["mask_ratio"] == pytest.approx(0.75)
    assert np.array(body["error_map"]).shape == (GRID, GRID)
    metrics = body["metrics"]
    assert metrics["masked_mse"] > 0 and metrics["masked_psnr"] > 0 and metrics["inference_ms"] > 0
    assert body["timing"]["batch_size"] >= 1 and body["timing"]["server_ms"] > 0
    assert body["uses_target_stats"] is False and body["note"] is None
    # the masked panel really is blank where the mask says removed
    masked = decode_panel(body["panels"]["masked"]).astype(int)
    original = decode_panel(body["panels"]["original"]).astype(int)
    r, c = map(int, np.argwhere(mask == 0)[0])
    assert np.abs(masked[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] - original[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16]).max() <= 1


def test_same_seed_same_result_and_omitted_seed_is_reported(client, photo_png):
    a = post(client, photo_png, seed=11).json()
    b = post(client, photo_png, seed=11).json()
    c = post(client, photo_png, seed=12).json()
    assert a["mask"] == b["mask"] and a["panels"] == b["panels"]
    assert a["mask"] != c["mask"]
    drawn = post(client, photo_png).json()
    assert isinstance(drawn["seed"], int)
    replay = post(client, photo_png, seed=drawn["seed"]).json()
    assert replay["mask"] == drawn["mask"] and replay["panels"]["pasted"] == drawn["panels"]["pasted"]


def test_higher_ratio_with_same_seed_removes_a_superset(client, photo_png):
    low = np.array(post(client, photo_png, seed=5, mask_ratio=0.5).json()["mask"])
    high = np.array(post(client, photo_png, seed=5, mask_ratio=0.85).json()["mask"])
    assert high.sum() > low.sum() and np.all(high >= low)


@pytest.mark.parametrize("strategy", ["block", "grid"])
def test_other_strategies(client, photo_png, strategy):
    body = post(client, photo_png, strategy=strategy, mask_ratio=0.75, seed=3).json()
    mask = np.array(body["mask"])
    assert body["strategy"] == strategy and mask.sum() == 12
    if strategy == "grid":  # one kept patch per 2x2 cell
        assert all(mask[r:r + 2, c:c + 2].sum() == 3 for r in (0, 2) for c in (0, 2))


def test_explicit_mask_overrides_ratio_and_strategy(client, photo_png):
    mask = [[1, 0, 1, 1], [1, 1, 1, 0], [0, 1, 1, 1], [1, 1, 0, 1]]
    body = post(client, photo_png, mask=mask, mask_ratio=0.3, strategy="grid", seed=4).json()
    assert body["mask"] == mask and body["strategy"] == "custom" and body["seed"] is None
    assert body["mask_ratio"] == pytest.approx(12 / 16)


def test_keep_aspect_resize_gives_a_non_square_grid(client):
    wide = png_bytes(synthetic_photo(160, 80))
    body = post(client, wide, resize="keep-aspect", seed=1).json()
    rows, cols = body["grid"]
    assert cols > rows and body["resize"] == "keep-aspect"
    assert np.array(body["mask"]).shape == (rows, cols)


def test_accept_png_returns_the_four_panel_figure(client, photo_png):
    resp = post(client, photo_png, seed=9, headers={"Accept": "image/png"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    assert resp.headers["x-mae-seed"] == "9" and resp.headers["x-mae-model"] == DEFAULT
    figure = Image.open(io.BytesIO(resp.content))
    assert figure.width == 4 * 64 + 5 * 8  # four panels in a row (mae_core.figure layout)
    assert post(client, photo_png, headers={"Accept": "application/json, image/png;q=0.5"}).headers[
        "content-type"].startswith("application/json")


def test_norm_pix_checkpoint_is_flagged(ckpt_dir, photo_png):
    write_checkpoint(ckpt_dir, "normpix", norm_pix_loss=True)
    with running(ckpt_dir) as client:
        body = post(client, photo_png, model="normpix", seed=1).json()
    assert body["model"] == "normpix" and body["uses_target_stats"] is True
    assert "true mean and variance" in body["note"]


def test_other_checkpoints_load_on_first_use_in_a_bounded_cache(ckpt_dir, photo_png):
    for name in ("a", "b", "c"):
        write_checkpoint(ckpt_dir, name, seed=ord(name))
    with running(ckpt_dir, model_cache_size=1) as client:
        registry = client.app.state.registry
        wait_for(lambda: registry.default_state == "ready")
        for name in ("a", "b", "c"):
            assert post(client, photo_png, model=name, seed=1).json()["model"] == name
        loaded = registry.loaded_ids()
        assert DEFAULT in loaded and "c" in loaded and len(loaded) == 2  # default + 1 cached


# ---------------------------------------------------------------------------- service endpoints
def test_models_lists_cards_and_broken_files(ckpt_dir):
    write_checkpoint(ckpt_dir, "encoder-only", decoder=False)
    (ckpt_dir / "broken.safetensors").write_bytes(b"not a checkpoint")
    with running(ckpt_dir) as client:
        body = client.get("/api/models").json()
    assert body["default_model"] == DEFAULT and body["default_present"] is True
    models = {m["id"]: m for m in body["models"]}
    assert set(models) == {DEFAULT, "encoder-only", "broken"}
    assert models[DEFAULT]["can_reconstruct"] and models[DEFAULT]["default"]
    assert models[DEFAULT]["card"]["model_config"]["img_size"] == [64, 64]
    assert "encoder" in models[DEFAULT]["summary"]["architecture"]
    assert models[DEFAULT]["summary"]["norm_pix_loss"] is False
    assert models["encoder-only"]["can_reconstruct"] is False
    assert models["broken"]["can_reconstruct"] is False and models["broken"]["error"]


def test_ready_is_503_until_the_default_has_loaded(ckpt_dir):
    app = create_app(Settings(checkpoint_dir=ckpt_dir))
    registry = app.state.registry
    gate = threading.Event()
    real_get = registry.get

    def slow_get(model_id):
        gate.wait(10)
        return real_get(model_id)

    registry.get = slow_get
    with TestClient(app) as client:
        assert client.get("/api/health").status_code == 200
        resp = client.get("/api/ready")
        assert resp.status_code == 503 and resp.json()["state"] == "loading"
        gate.set()
        wait_for(lambda: client.get("/api/ready").status_code == 200)
        assert client.get("/api/ready").json()["loaded"] == [DEFAULT]


def test_without_a_default_the_app_starts_and_says_so(tmp_path, photo_png):
    # (the embedded mae-lab-default is always offered, so the missing default is another id)
    folder = tmp_path / "other"
    write_checkpoint(folder, "only-one")
    with running(folder, default_model="retrained-default") as client:
        wait_for(lambda: client.app.state.registry.default_state != "loading")
        assert client.get("/api/health").status_code == 200
        ready = client.get("/api/ready")
        assert ready.status_code == 503
        assert ready.json()["state"] == "missing" and "no default checkpoint" in ready.json()["message"]
        models = client.get("/api/models").json()
        assert models["default_present"] is False
        assert [m["id"] for m in models["models"]] == ["only-one", "mae-lab-default"]
        assert_error(post(client, photo_png), 422, "unknown_model", "only-one")
        assert post(client, photo_png, model="only-one").status_code == 200
        page = client.get("/")
        assert page.status_code == 200 and "No default checkpoint" in page.text


def test_empty_checkpoint_folder(tmp_path):
    """A missing or empty checkpoint folder still serves the embedded default (issue 13: it ships
    inside the package); with another default id nothing is usable from the folder."""
    with running(tmp_path / "missing-folder") as client:
        models = client.get("/api/models").json()
        assert [m["id"] for m in models["models"]] == ["mae-lab-default"] and models["default_present"]
        wait_for(lambda: client.get("/api/ready").status_code == 200)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("payload", [b"", b"definitely not an image", png_bytes(synthetic_photo())[:60]])
def test_400_unreadable_image(client, payload):
    assert_error(post(client, payload), 400, "unreadable_image")


def test_413_file_too_large(ckpt_dir, photo_png):
    with running(ckpt_dir, max_upload_bytes=len(photo_png) - 1) as client:
        assert_error(post(client, photo_png), 413, "too_large", "MAE_MAX_UPLOAD_BYTES")


def test_413_body_too_large_is_refused_before_parsing(ckpt_dir):
    with running(ckpt_dir, max_upload_bytes=1000) as client:
        big = b"\0" * (1024 * 1024 + 5000)
        assert_error(post(client, big), 413, "too_large")


def test_413_too_many_pixels(ckpt_dir, photo_png):
    with running(ckpt_dir, max_image_pixels=1000) as client:
        assert_error(post(client, photo_png), 413, "too_large", "megapixels")


@pytest.mark.parametrize("content_type,data", [
    ("text/plain", b"hello"),
    ("image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
    ("application/octet-stream", png_bytes(synthetic_photo(32, 32), "ICO")),
])
def test_415_unsupported_type(client, content_type, data):
    assert_error(post(client, data, content_type=content_type), 415, "unsupported_image", "JPEG")


@pytest.mark.parametrize("fields,words", [
    ({"mask_ratio": 1.5}, ["mask_ratio"]),
    ({"mask_ratio": 0}, ["mask_ratio"]),
    ({"mask_ratio": -0.2}, ["mask_ratio"]),
    ({"mask_ratio": "lots"}, ["mask_ratio"]),
    ({"strategy": "spiral"}, ["spiral", "random"]),
    ({"strategy": "grid", "mask_ratio": 0.5}, ["0.75"]),
    ({"seed": -1}, ["seed"]),
    ({"resize": "stretch"}, ["resize"]),
    ({"mask": "[[1, 0], [0"}, ["JSON"]),
    ({"mask": [[1, 0, 1], [0, 1, 1], [1, 1, 0]]}, ["4x4"]),
    ({"mask": [[0] * 4] * 4}, ["at least one"]),
    ({"mask": [[2] * 4] * 4}, ["0"]),
])
def test_422_bad_parameters(client, photo_png, fields, words):
    assert_error(post(client, photo_png, **fields), 422, "invalid_parameter", *words)


def test_422_missing_image(client):
    resp = client.post("/reconstruct", data={"mask_ratio": "0.75"})
    assert_error(resp, 422, "invalid_parameter", "image")


@pytest.mark.parametrize("model", ["nope", "../checkpoints/mae-lab-default", "/etc/passwd",
                                   "mae-lab-default.safetensors"])
def test_422_unknown_model_never_a_path(client, photo_png, model):
    assert_error(post(client, photo_png, model=model), 422, "unknown_model", "/api/models")


def test_409_encoder_only_checkpoint(ckpt_dir, photo_png):
    write_checkpoint(ckpt_dir, "encoder-only", decoder=False)
    with running(ckpt_dir) as client:
        assert_error(post(client, photo_png, model="encoder-only"), 409, "decoder_missing", "decoder")


def test_422_broken_checkpoint(ckpt_dir, photo_png):
    (ckpt_dir / "broken.safetensors").write_bytes(b"garbage")
    with running(ckpt_dir) as client:
        assert_error(post(client, photo_png, model="broken"), 422, "checkpoint_unusable", "broken")


def in_thread(fn, *args, **kwargs):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", fn(*args, **kwargs)))
    thread.start()
    return thread, box


def test_503_when_the_queue_is_full(ckpt_dir, photo_png):
    app = create_app(Settings(checkpoint_dir=ckpt_dir, queue_size=1))
    gate = gate_worker(app)
    with TestClient(app) as client:
        wait_for(lambda: app.state.registry.default_state == "ready")
        gate.clear()
        thread, box = in_thread(post, client, photo_png, seed=1)
        wait_for(lambda: app.state.batcher.pending == 1)
        resp = post(client, photo_png, seed=2)
        assert_error(resp, 503, "queue_full", "retry")
        assert int(resp.headers["retry-after"]) >= 1
        gate.set()
        thread.join(10)
        assert box["value"].status_code == 200
        assert post(client, photo_png, seed=2).status_code == 200  # room again


def test_503_when_queue_size_is_zero(ckpt_dir, photo_png):
    with running(ckpt_dir, queue_size=0) as client:
        assert_error(post(client, photo_png), 503, "queue_full")


# ---------------------------------------------------------------------------- micro-batching
def test_concurrent_compatible_requests_share_one_forward_pass(ckpt_dir, photo_png):
    app = create_app(Settings(checkpoint_dir=ckpt_dir, batch_window_ms=5))
    gate = gate_worker(app)
    with TestClient(app) as client:
        batcher = app.state.batcher
        wait_for(lambda: app.state.registry.default_state == "ready")
        solo = {seed: post(client, photo_png, seed=seed).json() for seed in (21, 22, 23)}
        gate.clear()
        first = in_thread(post, client, photo_png, seed=20)  # occupies the worker
        wait_for(lambda: batcher.pending == 1)
        runs_before = batcher.batches_run
        waiting = {seed: in_thread(post, client, photo_png, seed=seed) for seed in (21, 22, 23)}
        odd = in_thread(post, client, photo_png, seed=24, mask_ratio=0.5)  # different ratio
        wait_for(lambda: batcher.pending == 5)
        gate.set()
        for thread, _ in [first, odd, *waiting.values()]:
            thread.join(10)
        assert batcher.batches_run - runs_before == 3  # first, the three compatible ones, odd
        for seed, (_, box) in waiting.items():
            body = box["value"].json()
            assert body["timing"]["batch_size"] == 3
            assert body["seed"] == seed and body["mask"] == solo[seed]["mask"]
            for name in ("original", "reconstruction"):  # batching does not change the result
                diff = decode_panel(body["panels"][name]).astype(int) - decode_panel(solo[seed]["panels"][name])
                assert np.abs(diff).max() <= 1
        assert odd[1]["value"].json()["timing"]["batch_size"] == 1


def test_a_bad_request_in_a_batch_fails_alone(ckpt_dir, photo_png):
    app = create_app(Settings(checkpoint_dir=ckpt_dir, batch_window_ms=5))
    gate = gate_worker(app)
    good_mask = [[1, 1, 1, 0], [1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1]]
    wrong_shape = [[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 0, 0]]  # also hides 12 patches
    with TestClient(app) as client:
        wait_for(lambda: app.state.registry.default_state == "ready")
        gate.clear()
        first = in_thread(post, client, photo_png, seed=1)
        wait_for(lambda: app.state.batcher.pending == 1)
        good = in_thread(post, client, photo_png, mask=good_mask)
        bad = in_thread(post, client, photo_png, mask=wrong_shape)
        wait_for(lambda: app.state.batcher.pending == 3)
        gate.set()
        for thread, _ in (first, good, bad):
            thread.join(10)
    assert good[1]["value"].status_code == 200 and good[1]["value"].json()["mask"] == good_mask
    assert_error(bad[1]["value"], 422, "invalid_parameter", "4x4")


# ---------------------------------------------------------------------------- docs
def test_openapi_documents_every_field_with_an_example(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/reconstruct"]["post"]
    ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].split("/")[-1]
    fields = spec["components"]["schemas"][ref]["properties"]
    assert {"image", "mask_ratio", "strategy", "seed", "model", "mask", "resize"} <= set(fields)
    for name, schema in fields.items():
        assert schema.get("examples") and schema.get("description"), name
    assert "image/png" in op["responses"]["200"]["content"]
    assert {"400", "409", "413", "415", "422", "503"} <= set(op["responses"])
    for name in ("ReconstructResponse", "ModelsResponse"):
        for prop, schema in spec["components"]["schemas"][name]["properties"].items():
            assert "examples" in schema or "$ref" in schema or "items" in schema, (name, prop)
    assert client.get("/docs").status_code == 200


def test_a_default_that_appears_after_start_up_is_loaded(tmp_path):
    folder = tmp_path / "late"
    folder.mkdir()
    with running(folder, default_model="late-default") as client:
        registry = client.app.state.registry
        wait_for(lambda: registry.default_state == "missing")
        assert client.get("/api/ready").status_code == 503
        write_checkpoint(folder, "late-default")  # e.g. training finished while the server runs
        wait_for(lambda: client.get("/api/ready").status_code == 200)
        assert client.get("/api/ready").json()["loaded"] == ["late-default"]


def test_413_streamed_body_without_length_is_cut_off(ckpt_dir):
    def chunks():
        yield b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 64 * 1024
        yield b"\r\n--x--\r\n"

    with running(ckpt_dir, max_upload_bytes=1000) as client:
        resp = client.post("/reconstruct", content=chunks(),
                           headers={"content-type": "multipart/form-data; boundary=x"})
        assert_error(resp, 413, "too_large", "MAE_MAX_UPLOAD_BYTES")


def test_panel_format_choices(client, photo_png):
    """panel_format picks the panel encoding; PNG stays the default."""
    for fmt, magic in (("png", b"\x89PNG"), ("jpeg", b"\xff\xd8\xff"), ("webp", b"RIFF")):
        r = post(client, photo_png, seed=1, panel_format=fmt)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["panel_format"] == fmt
        assert base64.b64decode(body["panels"]["pasted"]).startswith(magic)
    assert post(client, photo_png, seed=1).json()["panel_format"] == "png"
    r = post(client, photo_png, panel_format="gif")
    assert r.status_code == 422 and "panel_format" in r.text


def test_a_lone_request_does_not_wait_out_the_batching_window(ckpt_dir, photo_png):
    """With nothing else in flight the worker starts at once, even with a long window."""
    with running(ckpt_dir, batch_window_ms=500) as c:
        post(c, photo_png, seed=0)  # load + warm up
        start = time.monotonic()
        r = post(c, photo_png, seed=1)
        assert r.status_code == 200
        assert r.json()["timing"]["queue_ms"] < 250
        assert time.monotonic() - start < 2.0


def test_precision_setting_reaches_the_model_and_bad_values_are_refused(ckpt_dir, photo_png):
    with running(ckpt_dir, precision="fp32") as exact, running(ckpt_dir, precision="bf16") as half:
        a = post(exact, photo_png, seed=3).json()
        b = post(half, photo_png, seed=3).json()
    assert (a["compute_dtype"], b["compute_dtype"]) == ("fp32", "bf16")
    assert a["mask"] == b["mask"]
    ra, rb = (decode_panel(x["panels"]["reconstruction"]).astype(int) for x in (a, b))
    assert np.abs(ra - rb).mean() < 1.0
    with pytest.raises(ValueError, match="precision"):
        Settings(checkpoint_dir=ckpt_dir, precision="half")


def test_requests_are_fitted_to_a_loaded_model_before_the_queue(ckpt_dir, photo_png):
    with running(ckpt_dir) as c:
        registry = c.app.state.registry
        info = registry.resolve(None)
        wait_for(lambda: registry.loaded(info) is not None)
        seen = []
        batcher = c.app.state.batcher
        submit = batcher.submit
        batcher.submit = lambda job: (seen.append(job.image), submit(job))[1]
        assert post(c, photo_png, seed=1).status_code == 200
    assert type(seen[0]).__name__ == "PreparedImage" and seen[0].tensor.shape == (3, 64, 64)
