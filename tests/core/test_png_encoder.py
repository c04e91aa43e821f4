"""The fast PNG encoder writes standard, lossless files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mae_core.figure import encode_image, to_png_bytes
from mae_core.png import encode_rgb_png


@pytest.mark.parametrize("shape", [(224, 224, 3), (1, 1, 3), (5, 301, 3), (300, 2, 3)])
def test_round_trip_is_lossless(shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    decoded = Image.open(io.BytesIO(encode_rgb_png(pixels)))
    decoded.load()  # also checks the CRCs and the zlib stream
    assert decoded.format == "PNG" and decoded.mode == "RGB"
    assert np.array_equal(np.asarray(decoded), pixels)


def test_smooth_images_compress():
    ramp = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :, None], (256, 256, 3))
    assert len(encode_rgb_png(ramp)) < ramp.nbytes / 20


def test_other_arrays_are_refused_and_other_modes_use_pillow():
    with pytest.raises(ValueError, match="uint8"):
        encode_rgb_png(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        encode_rgb_png(np.zeros((4, 4, 3), dtype=np.float32))
    grey = Image.new("L", (8, 8), 100)
    assert Image.open(io.BytesIO(encode_image(grey, "png"))).mode == "L"
    figure = Image.new("RGB", (10, 6), (1, 2, 3))
    assert np.asarray(Image.open(io.BytesIO(to_png_bytes(figure)))).tolist() == np.asarray(figure).tolist()
