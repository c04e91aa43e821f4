"""Hostile uploads to ``POST /reconstruct``: oversized bodies, bombs, refused formats, damaged
files, polyglots and bad parameters. Each test tries the attack and checks the protection."""

from __future__ import annotations

import io
import json
import threading
import time
import warnings

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFile, TgaImagePlugin

from app import Settings, create_app
from app.images import WORKING_PIXELS, decode_image, open_header
from mae_tools.testing import call_asgi, png_bytes, reconstruct_form, synthetic_photo, write_checkpoint
from support.hostile_images import (
    encode, hostile_corpus, picture, raw_png, zlib_bomb_png,
)
from mae_core.errors import ImageDecodeError

MODEL = "mae-lab-default"
BOUNDARY = "hardening"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads") / "checkpoints"
    write_checkpoint(folder, MODEL)
    return folder


@pytest.fixture(scope="module")
def client(folder):
    with TestClient(create_app(Settings(checkpoint_dir=folder))) as c:
        yield c


def post(client, image: bytes, **kwargs):
    return client.post("/reconstruct", **reconstruct_form(image, **kwargs))


def assert_json_error(resp, status: int, kind: str | None = None) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    body = resp.json()
    assert body["status"] == status and len(body["message"]) > 15, body
    if kind is not None:
        assert body["error"] == kind, body
    return body


def multipart_head(filename: str = "big.png") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n").encode()


# --------------------------------------------------------------------------- body size
LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def small_limit_app(folder):
    return create_app(Settings(checkpoint_dir=folder, max_upload_bytes=LIMIT))


def test_default_limits():
    settings = Settings()
    assert settings.max_upload_bytes == 10 * 1024 * 1024
    assert settings.max_image_pixels == 40_000_000


def test_honest_content_length_over_the_limit_is_refused_before_reading(small_limit_app):
    out = call_asgi(small_limit_app, "POST", "/reconstruct",
                    {"content-type": f"multipart/form-data; boundary={BOUNDARY}",
                     "content-length": str(50 * 2**20)},
                    [b"\0" * 65536] * 4)
    assert out["status"] == 413 and out["chunks_read"] == 0
    assert json.loads(out["body"])["error"] == "too_large"
    assert out["headers"]["connection"] == "close"


@pytest.mark.parametrize("declared", [None, "1000"], ids=["chunked", "lying-content-length"])
def test_streamed_body_is_cut_off_at_the_limit(small_limit_app, declared):
    """No length (chunked) or a lying small one: counting stops the read just past the limit."""
    chunk = b"\0" * 65536
    chunks = [multipart_head()] + [chunk] * 160  # 10 MiB offered
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    if declared:
        headers["content-length"] = declared
    out = call_asgi(small_limit_app, "POST", "/reconstruct", headers, chunks)
    assert out["status"] == 413, out
    assert json.loads(out["body"])["error"] == "too_large"
    read = out["chunks_read"] - 1
    assert read * len(chunk) <= LIMIT + len(chunk), f"read {read} chunks past a {LIMIT} B limit"


def test_body_under_the_limit_still_works(client):
    assert post(client, png_bytes(synthetic_photo()), seed=1).status_code == 200


# --------------------------------------------------------------------------- pixels and bombs
def test_pixel_cap_is_read_from_the_header_without_decoding(client, monkeypatch):
    decoded = []
    real_load = ImageFile.ImageFile.load

    def spy_load(self):
        decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy_load)
    header_only = raw_png(8000, 6000, idat=b"x\x9c")  # 48 MP claimed, no pixel data at all
    body = assert_json_error(post(client, header_only), 413, "too_large")
    assert "megapixels" in body["message"] and "MAE_MAX_IMAGE_PIXELS" in body["message"]
    assert decoded == []


def test_pixel_cap_is_configurable(folder):
    with TestClient(create_app(Settings(checkpoint_dir=folder, max_image_pixels=50 * 40))) as c:
        assert post(c, png_bytes(synthetic_photo(50, 40)), seed=1).status_code == 200
        assert_json_error(post(c, png_bytes(synthetic_photo(51, 40))), 413, "too_large")


def test_pillow_bomb_warning_is_an_error(folder, monkeypatch):
    """Even with our own cap set higher, Pillow's decompression-bomb warning refuses the file."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # warns above 1000 px, errors above 2000
    with TestClient(create_app(Settings(checkpoint_dir=folder, max_image_pixels=10**9))) as c:
        body = assert_json_error(post(c, png_bytes(synthetic_photo(40, 40))), 413, "too_large")
    assert "pixels" in body["message"]


def test_decoded_images_are_bounded_whatever_was_uploaded():
    big_png = zlib_bomb_png(5000, 4000)  # 20 MP of zeros in ~20 kB
    img = decode_image(big_png, "image/png", 2**20, 40_000_000)
    assert img.mode == "RGB" and img.width * img.height <= WORKING_PIXELS
    assert abs(img.width / img.height - 5000 / 4000) < 0.01
    big_jpeg = encode(Image.new("RGB", (3000, 2000), (200, 30, 30)), "JPEG", quality=50)
    img = decode_image(big_jpeg, "image/jpeg", 2**20, 40_000_000)
    assert img.width * img.height <= WORKING_PIXELS and img.getpixel((10, 10))[0] > 180


def test_decoding_runs_a_bounded_number_at_a_time(folder, monkeypatch):
    import app.routers.reconstruct as route

    active, peak, lock = [0], [0], threading.Lock()
    real = route.decode_image

    def slow_decode(*args, **kwargs):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.15)
            return real(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(route, "decode_image", slow_decode)
    data = png_bytes(synthetic_photo())
    with TestClient(create_app(Settings(checkpoint_dir=folder, decode_concurrency=2))) as c:
        threads = [threading.Thread(target=post, args=(c, data)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert peak[0] == 2


# --------------------------------------------------------------------------- formats
def test_only_allowed_parsers_ever_run(monkeypatch):
    """Image.open gets the allow-list: a TGA (no magic bytes; Pillow would accept it) is never
    handed to the TGA parser."""
    ran = []
    real_open = TgaImagePlugin.TgaImageFile._open

    def spy(self):
        ran.append(True)
        return real_open(self)

    monkeypatch.setattr(TgaImagePlugin.TgaImageFile, "_open", spy)
    with pytest.raises(ImageDecodeError):
        open_header(encode(picture(), "TGA"), 10**9)
    assert ran == [], "the TGA parser ran on an upload"


CORPUS = hostile_corpus()


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_hostile_file_gets_its_status_never_500(client, case):
    started = time.perf_counter()
    resp = post(client, case.data, content_type=case.content_type)
    body = assert_json_error(resp, case.status)
    assert body["error"] == {400: "unreadable_image", 413: "too_large", 415: "unsupported_image"}[case.status]
    assert time.perf_counter() - started < 5


def test_corpus_covers_every_kind():
    names = {c.name for c in CORPUS}
    for needle in ("bomb", "truncated", "zero_bytes", "random_bytes", "javascript", "zip", "eps", "svg"):
        assert any(needle in n for n in names), needle


def test_image_first_polyglot_is_decoded_as_the_image_only(client):
    """A PNG with a ZIP appended is a valid PNG: the server decodes the picture and never echoes
    the trailing bytes (every panel is re-encoded from pixels)."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.html", "<script>alert(1)</script>")
    data = png_bytes(synthetic_photo()) + buf.getvalue()
    resp = post(client, data, seed=3)
    assert resp.status_code == 200
    assert b"alert" not in resp.content and b"PK\x03\x04" not in resp.content


def test_unsupported_formats_are_refused_before_pillow_sees_them(client, monkeypatch):
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    for case in CORPUS:
        if case.status == 415:
            assert_json_error(post(client, case.data, content_type=case.content_type), 415)
    assert opened == []


# --------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("fields", [
    {"mask_ratio": "nan"}, {"mask_ratio": "NaN"}, {"mask_ratio": "inf"}, {"mask_ratio": "-inf"},
    {"mask_ratio": "-0.5"}, {"mask_ratio": "0"}, {"mask_ratio": "1"}, {"mask_ratio": "1.5"},
    {"mask_ratio": "1e999"}, {"strategy": "spiral"},
    {"strategy": "../random"}, {"seed": str(2**63)}, {"seed": str(10**40)}, {"seed": "-1"},
    {"seed": "1e3"}, {"seed": "nan"}, {"resize": "stretch"}, {"model": "no-such-model"},
    {"model": "x" * 500}, {"mask": "[" * 5000}, {"mask": "[" * 50 + "]" * 50},
    {"mask": json.dumps([[1] * 100] * 100)}, {"mask": " " * 100_000 + "[[1]]"},
])
def test_bad_parameters_are_422(client, fields):
    resp = post(client, png_bytes(synthetic_photo()), **fields)
    body = assert_json_error(resp, 422)
    assert body["error"] in ("invalid_parameter", "unknown_model")


def test_empty_fields_mean_the_defaults(client):
    body = post(client, png_bytes(synthetic_photo()), mask_ratio="", strategy="").json()
    assert body["mask_ratio"] == 0.75 and body["strategy"] == "random"


def test_largest_seed_is_accepted(client):
    resp = post(client, png_bytes(synthetic_photo()), seed=2**63 - 1)
    assert resp.status_code == 200 and resp.json()["seed"] == 2**63 - 1


def test_no_warning_leaks_out_of_decoding():
    """The bomb filter is scoped: after a decode, Pillow's warning is a warning again."""
    decode_image(png_bytes(synthetic_photo()), "image/png", 2**20, 10**6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("x", Image.DecompressionBombWarning)
    assert len(caught) == 1


def test_decode_rejects_empty_and_reports_sizes():
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"", None, 10, 10)
    arr = np.zeros((2, 2, 3), np.uint8)
    assert decode_image(png_bytes(Image.fromarray(arr)), None, 10**6, 10).size == (2, 2)
