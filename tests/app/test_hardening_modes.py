"""Every image mode, EXIF orientation, tiny and extremely elongated images come out right."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app import Settings, create_app
from app.images import decode_image
from mae_tools.testing import reconstruct_form, write_checkpoint
from support.hostile_images import encode, malformed_exif_png, mode_cases, oriented, picture
from mae_core.errors import ImageDecodeError, UnsupportedImageError
from mae_core.imaging import fit_image, grid_for_aspect, to_rgb

MODEL = "mae-lab-default"
CASES = mode_cases()
# Files whose decoding depends on the installed Pillow's reader, not on our code: Pillow 12.3
# reads an uncompressed YCbCr TIFF (photometric 6) as RGBX and fails "image file is truncated";
# 13.0 reads it. What we promise for them: the right colour, or a typed 400 that says what to send.
READER_DEPENDENT = {"ycbcr_tiff"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("modes") / "checkpoints"
    write_checkpoint(folder, MODEL)  # 64 px, 16 px patches: a 4x4 grid
    with TestClient(create_app(Settings(checkpoint_dir=folder))) as c:
        yield c


def post(client, data: bytes, **fields):
    resp = client.post("/reconstruct", **reconstruct_form(data, **fields))
    assert resp.status_code == 200, resp.text[:300]
    return resp.json()


def panel(body: dict, name: str = "original") -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["panels"][name]))).convert("RGB"))


def assert_colour(pixels: np.ndarray, rgb, tolerance: int) -> None:
    diff = np.abs(pixels.reshape(-1, 3).astype(int) - np.array(rgb)).max()
    assert diff <= tolerance, (pixels.reshape(-1, 3)[0], rgb)


# ------------------------------------------------------------------------------ modes
DECODABLE = [c for c in CASES if c.name not in READER_DEPENDENT]
DEPENDENT = [c for c in CASES if c.name in READER_DEPENDENT]


@pytest.mark.parametrize("case", DECODABLE, ids=[c.name for c in DECODABLE])
def test_mode_decodes_to_the_right_colour(case):
    img = decode_image(case.data, None, 2**20, 10**6)
    assert img.mode == "RGB"
    assert_colour(np.asarray(img), case.rgb, case.tolerance)


@pytest.mark.parametrize("case", DEPENDENT, ids=[c.name for c in DEPENDENT])
def test_reader_dependent_mode_decodes_right_or_is_a_typed_error(case):
    try:
        img = decode_image(case.data, None, 2**20, 10**6)
    except ImageDecodeError as exc:
        assert "send an intact" in str(exc)
    else:
        assert img.mode == "RGB"
        assert_colour(np.asarray(img), case.rgb, case.tolerance)


@pytest.mark.parametrize("case", DEPENDENT, ids=[c.name for c in DEPENDENT])
def test_reader_dependent_mode_is_200_right_or_a_clear_400(client, case):
    resp = client.post("/reconstruct", **reconstruct_form(case.data, seed=1))
    if resp.status_code == 200:
        assert_colour(panel(resp.json()), case.rgb, case.tolerance + 1)
    else:
        assert resp.status_code == 400, resp.text[:300]
        assert "send an intact" in resp.json()["message"]


@pytest.mark.parametrize("name", ["cmyk_jpeg_adobe_inverted", "rgba_half_transparent", "grey16_png",
                                  "rgb16_png", "palette_transparency_index", "one_bit_png"])
def test_mode_survives_the_whole_service(client, name):
    case = next(c for c in CASES if c.name == name)
    assert_colour(panel(post(client, case.data, seed=1)), case.rgb, case.tolerance + 1)


def test_adobe_cmyk_jpeg_really_is_inverted_on_disk():
    """The case above is only meaningful if the file stores inverted CMYK with an Adobe marker."""
    case = next(c for c in CASES if c.name == "cmyk_jpeg_adobe_inverted")
    assert b"Adobe" in case.data
    img = Image.open(io.BytesIO(case.data))
    assert img.mode == "CMYK" and img.info.get("adobe") is not None


def test_sixteen_bit_grey_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    source = Image.fromarray(ramp)
    assert source.mode == "I;16"
    img = to_rgb(source)
    values = np.asarray(img)[..., 0].ravel()
    assert values.min() == 0 and values.max() == 255
    assert len(np.unique(values)) > 200  # a clip to 255 would leave only a few levels


def test_unconvertible_mode_is_a_typed_error():
    lab = Image.new("LAB", (8, 8), (50, 0, 0))
    try:
        to_rgb(lab)
    except UnsupportedImageError as exc:
        assert "LAB" in str(exc)
    # Pillow may learn LAB -> RGB one day; then it simply works.


# ------------------------------------------------------------------------- orientation
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    base = picture(48, 32)
    img = decode_image(oriented(base, orientation), "image/png", 2**20, 10**6)
    assert img.size == base.size
    assert np.array_equal(np.asarray(img), np.asarray(base))


def test_orientation_reaches_the_model(client):
    """A landscape picture stored as portrait + orientation 6 (phones do this) stays landscape."""
    body = post(client, oriented(picture(96, 48), 6, "JPEG"), resize="keep-aspect", seed=1)
    rows, cols = body["grid"]
    assert cols > rows
    original = panel(body).astype(int)
    assert original[2, 2, 0] > 150 and original[2, -3, 1] > 150  # red top-left, green top-right


def test_orientation_is_applied_once():
    base = picture(48, 32)
    once = decode_image(oriented(base, 8), None, 2**20, 10**6)
    assert np.array_equal(np.asarray(to_rgb(once)), np.asarray(base))


def test_malformed_exif_is_ignored(client):
    base = picture(48, 32)
    img = decode_image(malformed_exif_png(base), None, 2**20, 10**6)
    assert np.array_equal(np.asarray(img), np.asarray(base))
    post(client, malformed_exif_png(base), seed=2)


# --------------------------------------------------------------- tiny and elongated images
@pytest.mark.parametrize("size", [(1, 1), (3, 2), (15, 15), (1, 40), (40, 1)])
@pytest.mark.parametrize("resize", ["crop", "keep-aspect"])
def test_images_smaller_than_a_patch(client, size, resize):
    body = post(client, encode(Image.new("RGB", size, (90, 20, 200)), "PNG"), resize=resize, seed=1)
    rows, cols = body["grid"]
    assert 1 <= rows * cols <= 16
    assert body["image_size"] == [rows * 16, cols * 16]
    assert_colour(panel(body), (90, 20, 200), 1)


@pytest.mark.parametrize("size", [(20_000, 1), (1, 20_000), (5000, 3)])
def test_extreme_aspect_ratios(client, size):
    data = encode(Image.new("L", size, 128), "PNG")
    crop = post(client, data, resize="crop", seed=1)
    assert crop["grid"] == [4, 4]
    keep = post(client, data, resize="keep-aspect", seed=1)
    rows, cols = keep["grid"]
    assert rows * cols <= 16 and max(rows, cols) == 16  # at most 1:16, the grid's limit
    assert (cols > rows) == (size[0] > size[1])


def test_fit_image_never_builds_a_huge_intermediate(monkeypatch):
    sizes = []
    real_resize = Image.Image.resize

    def spy(self, size, *args, **kwargs):
        sizes.append(size)
        return real_resize(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    strip = Image.new("RGB", (100_000, 1))
    for policy in ("crop", "keep-aspect"):
        out = fit_image(strip, (224, 224), 16, policy)
        assert out.width % 16 == 0 and out.height % 16 == 0
    assert max(w * h for w, h in sizes) <= 16 * 224 * 224


def test_fit_image_unchanged_for_ordinary_photos():
    """The memory guard only applies to extreme aspect ratios; a photo is resized then cropped
    exactly as before."""
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (259, 360, 3), dtype=np.uint8))
    scale = 64 / 259
    full = img.resize((max(64, round(360 * scale)), 64), Image.Resampling.BICUBIC)
    left = (full.width - 64) // 2
    expected = full.crop((left, 0, left + 64, 64))
    assert np.array_equal(np.asarray(fit_image(img, (64, 64), 16, "crop")), np.asarray(expected))


def test_grid_is_bounded_for_any_aspect():
    for width, height in [(1, 10**6), (10**6, 1), (1, 1), (3, 4)]:
        rows, cols = grid_for_aspect(width, height, 196)
        assert 1 <= rows <= 196 and 1 <= cols <= 196 and rows * cols <= 2 * 196
