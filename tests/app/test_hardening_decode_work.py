"""Decode-work bombs (issue 15, items 2 and 4): refused from the header, before any decode."""

from __future__ import annotations

import time

import pytest

from app.errors import PayloadTooLargeError
from app.images import decode_image, jpeg_scan_count
from support.hostile_images import encode, lossless_webp, picture, scan_bomb_jpeg, tile_bomb_tiff

MIB = 2**20


def test_scan_bomb_is_refused_fast_and_names_the_setting():
    bomb = scan_bomb_jpeg(2000, 2000, 3000)
    assert jpeg_scan_count(bomb) > 3000
    started = time.perf_counter()
    with pytest.raises(PayloadTooLargeError, match="MAE_MAX_JPEG_SCANS"):
        decode_image(bomb, "image/jpeg", 10 * MIB, 40_000_000)
    assert time.perf_counter() - started < 0.5


def test_ordinary_progressive_jpeg_passes_and_the_cap_is_a_setting():
    data = encode(picture(64, 48), "JPEG", progressive=True)
    assert decode_image(data, "image/jpeg", MIB, 10**6).size == (64, 48)
    with pytest.raises(PayloadTooLargeError, match="scans"):
        decode_image(data, "image/jpeg", MIB, 10**6, max_scans=2)


def test_tiff_tile_far_larger_than_the_image_is_refused():
    with pytest.raises(PayloadTooLargeError, match="8192x8192 blocks"):
        decode_image(tile_bomb_tiff(16, 16, 8192), None, MIB, 10**6)


def test_ordinary_tiled_tiff_passes():
    data = encode(picture(300, 200), "TIFF", tile=(256, 256)) if _tiles_supported() else None
    if data is not None:
        assert decode_image(data, None, 4 * MIB, 10**6).size == (300, 200)
    assert decode_image(encode(picture(300, 200), "TIFF"), None, 4 * MIB, 10**6).size == (300, 200)


def _tiles_supported() -> bool:
    try:
        encode(picture(16, 16), "TIFF", tile=(16, 16))
        return True
    except (TypeError, ValueError, OSError):
        return False


def test_webp_decode_memory_is_bounded_not_only_pixels():
    bomb = lossless_webp(6300, 6290)
    assert len(bomb) < 100
    with pytest.raises(PayloadTooLargeError, match="MAE_MAX_DECODE_BYTES"):
        decode_image(bomb, "image/webp", MIB, 40_000_000)
    # the same file is fine under a limit that covers it, and a small WebP under the default
    assert decode_image(lossless_webp(640, 480), "image/webp", MIB, 40_000_000).size == (640, 480)
