"""Hostile and awkward image files, generated in memory for the hardening tests.

Nothing here is downloaded or stored: every file is built from a few bytes or a synthetic picture
on each run. Three collections:

- ``hostile_corpus()``: files a server must refuse cleanly (bombs, truncations, garbage, polyglots,
  formats outside the allow-list), each with the HTTP status it must get.
- ``mode_cases()``: decodable files in awkward modes, each with the RGB colour it must come out as.
- ``oriented_jpeg(base, n)``: ``base`` stored rotated/flipped with EXIF orientation ``n`` (1-8),
  so that honouring the tag gives ``base`` back.

Raw formats (PNG chunks, GIF/JPEG/BMP headers) are written by hand where Pillow would refuse to
produce them (absurd sizes, broken checksums, missing data).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mae_tools.testing import png_chunk, raw_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- raw writers
def png_from_array(arr: np.ndarray, *, bit_depth: int, color_type: int) -> bytes:
    """Filter-type-0 scanlines of ``arr`` ([H, W] or [H, W, C], big-endian for 16 bits)."""
    dtype = ">u2" if bit_depth == 16 else np.uint8
    data = np.ascontiguousarray(arr.astype(dtype))
    height = data.shape[0]
    rows = b"".join(b"\0" + data[i].tobytes() for i in range(height))
    return raw_png(data.shape[1], height, bit_depth=bit_depth, color_type=color_type, rows=rows)


def zlib_bomb_png(width: int, height: int) -> bytes:
    """An 8-bit grey PNG of zeros: ~1000x smaller on disk than in memory."""
    compressor = zlib.compressobj(9)
    line = b"\0" * (width + 1)
    parts = [compressor.compress(line) for _ in range(height)]
    parts.append(compressor.flush())
    return raw_png(width, height, idat=b"".join(parts))


def gif_header(width: int, height: int) -> bytes:
    """A GIF whose logical screen and only frame claim ``width`` x ``height`` (no pixel data)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00"
    return screen + frame + b"\x3b"


def jpeg_with_size(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF header is patched to claim ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (10, 200, 30)), "JPEG"))
    at = data.index(b"\xff\xc0")  # SOF0: FF C0, length(2), precision(1), height(2), width(2)
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_header(width: int, height: int) -> bytes:
    """A 24-bit BMP header claiming ``width`` x ``height`` with no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each JPEG segment after SOI; a scan (SOS) includes its
    entropy-coded data, up to the next marker that is not a stuffed byte or a restart."""
    out, i = [], 2
    while i < len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xD9:
            out.append((marker, i, i + 2))
            break
        end = i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker == 0xDA:
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] != 0 and not 0xD0 <= data[end + 1] <= 0xD7:
                    break
                end += 2
        out.append((marker, i, end))
        i = end
    return out


def scan_bomb_jpeg(width: int, height: int, repeats: int) -> bytes:
    """A progressive JPEG whose smallest scan is repeated ``repeats`` times before EOI: a few
    bytes each, and every one a pass of the decoder over the whole image (40 MP x 30,000 scans
    is a 1 MB file that decodes for about a minute)."""
    data = encode(Image.new("RGB", (width, height), (120, 80, 40)), "JPEG", progressive=True, quality=90)
    segments = jpeg_segments(data)
    _, start, end = min((e - s, s, e) for m, s, e in segments if m == 0xDA)
    eoi = segments[-1][1]
    return data[:eoi] + data[start:end] * repeats + data[eoi:]


def tile_bomb_tiff(width: int, height: int, tile: int) -> bytes:
    """A grey deflate TIFF declaring ``width`` x ``height`` pixels stored in one ``tile`` x
    ``tile`` tile of zeros: the header passes a pixel check, libtiff allocates the whole tile."""
    compressor = zlib.compressobj(9)
    rows = b"\0" * (tile * 64)
    tile_data = b"".join([compressor.compress(rows) for _ in range(tile // 64)] + [compressor.flush()])
    data_at = 8 + 2 + 12 * 11 + 4
    short, long_ = 3, 4
    entries = [(256, short, width), (257, short, height), (258, short, 8), (259, short, 8),
               (262, short, 1), (277, short, 1), (284, short, 1), (322, short, tile),
               (323, short, tile), (324, long_, data_at), (325, long_, len(tile_data))]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == short
                                             else struct.pack("<I", value))
        for tag, kind, value in entries)
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + tile_data


def lossless_webp(width: int, height: int) -> bytes:
    """A uniform lossless WebP of any size, in 38 bytes: libwebp's fastest method codes a
    uniform picture with zero bits a pixel, so a small one's header is patched to the size."""
    data = bytearray(encode(Image.new("RGB", (64, 64), (10, 20, 30)), "WEBP", lossless=True, method=0))
    at = data.index(b"VP8L") + 8 + 1  # after the chunk header and the 0x2F signature
    bits = struct.unpack("<I", data[at:at + 4])[0] & ~((1 << 28) - 1)  # alpha, version
    data[at:at + 4] = struct.pack("<I", bits | (width - 1) | ((height - 1) << 14))
    return bytes(data)


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def picture(width: int = 48, height: int = 32, seed: int = 0) -> Image.Image:
    """A small RGB picture with different content in every corner (orientation shows)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    arr[: height // 2, : width // 2] = (250, 20, 20)
    arr[: height // 2, width // 2:] = (20, 250, 20)
    arr[height // 2:, : width // 2] = (20, 20, 250)
    return Image.fromarray(arr, "RGB")


# ------------------------------------------------------------------------- orientation
# The transpose that, applied to the stored pixels, gives the upright picture (EXIF 2..8);
# storing the inverse of it is what a camera does.
_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def oriented(base: Image.Image, orientation: int, fmt: str = "PNG") -> bytes:
    """``base`` stored as a camera would with EXIF orientation ``orientation`` (lossless PNG by
    default, so the decoded pixels can be compared exactly)."""
    method = _STORE[orientation]
    stored = base if method is None else base.transpose(method)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, fmt, exif=exif.tobytes())


def malformed_exif_png(base: Image.Image) -> bytes:
    """A PNG whose eXIf chunk is garbage (claims an IFD far outside the block)."""
    png = encode(base, "PNG")
    bad = b"MM\x00\x2a\xff\xff\xff\xf0" + b"\x00" * 6
    end = png.index(b"IDAT") - 4
    return png[:end] + png_chunk(b"eXIf", bad) + png[end:]


# ---------------------------------------------------------------------------- the corpus
@dataclass(frozen=True)
class Hostile:
    """One file the server must answer ``status`` for (never 500), without crashing."""

    name: str
    data: bytes
    status: int
    content_type: str = "application/octet-stream"


def _truncations(name: str, data: bytes) -> list[Hostile]:
    return [Hostile(f"{name}_truncated_{pct}", data[: max(1, len(data) * pct // 100)], 400)
            for pct in (10, 50, 90)]


def _zip_archive() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("payload.html", "<script>alert(1)</script>")
    return buf.getvalue()


def hostile_corpus() -> list[Hostile]:
    """Every hostile file, with the status the server must answer (413, 415 or 400)."""
    photo = picture(64, 48)
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    files = [
        # -- bombs: refused from the header, before any pixel is decoded
        Hostile("png_header_10g_pixels", raw_png(100_000, 100_000), 413),
        Hostile("png_header_48mp_truncated", raw_png(8000, 6000, idat=b"x\x9c"), 413),
        Hostile("png_zlib_bomb_49mp", zlib_bomb_png(7000, 7000), 413),
        Hostile("gif_screen_4g_pixels", gif_header(65535, 65535), 413),
        Hostile("jpeg_header_4g_pixels", jpeg_with_size(65500, 65500), 413),
        Hostile("bmp_header_2_5g_pixels", bmp_header(50_000, 50_000), 413),
        # -- decode-work bombs: few pixels or a small file, but a decode that runs for minutes
        #    or takes gigabytes; refused from what the header declares
        Hostile("jpeg_scan_bomb_2000_scans", scan_bomb_jpeg(2000, 2000, 2000), 413),
        Hostile("tiff_tile_bomb_16px_8192_tile", tile_bomb_tiff(16, 16, 8192), 413),
        Hostile("webp_lossless_bomb_39mp", lossless_webp(6300, 6290), 413),
        # -- empty, garbage, truncated
        Hostile("zero_bytes", b"", 400),
        Hostile("random_bytes", np.random.default_rng(1).bytes(4096), 400),
        Hostile("png_signature_only", PNG_SIGNATURE, 400),
        Hostile("png_header_no_data", raw_png(32, 32, idat=b""), 400),
        Hostile("png_bad_crc", PNG_SIGNATURE + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0), crc=0)
                + png_chunk(b"IEND", b""), 400),
        Hostile("png_corrupt_idat", raw_png(32, 32, color_type=2, idat=b"x\x9c" + b"\xff" * 64), 400),
        Hostile("gif_header_no_frames", b"GIF89a" + struct.pack("<HHBBB", 8, 8, 0, 0, 0) + b"\x3b", 400),
        *_truncations("png", encode(noise, "PNG")),
        *_truncations("jpeg", encode(noise, "JPEG", quality=95)),
        *_truncations("progressive_jpeg", encode(noise, "JPEG", progressive=True)),
        *_truncations("gif", encode(noise.convert("P"), "GIF")),
        *_truncations("webp", encode(noise, "WEBP", lossless=True)),
        *_truncations("bmp", encode(noise, "BMP")),
        *_truncations("tiff", encode(noise, "TIFF")),
        # -- polyglots: image magic in front of something else, or something else in front of
        #    an image; neither is decoded as an image
        Hostile("gif_magic_javascript", b"GIF89a=1;/*" + b"\0" * 8 + b"*/alert(document.domain)//", 400),
        Hostile("png_magic_html", PNG_SIGNATURE + b"<html><script>alert(1)</script></html>", 400),
        Hostile("jpeg_magic_zip", b"\xff\xd8\xff\xe0" + _zip_archive(), 400),
        Hostile("zip_then_png", _zip_archive() + encode(photo, "PNG"), 400),
        Hostile("html_then_jpeg", b"<!doctype html><img src=x onerror=alert(1)>" + encode(photo, "JPEG"), 400),
        Hostile("pdf_with_jpeg", b"%PDF-1.4\n1 0 obj<</Length 10>>stream\n" + encode(photo, "JPEG"), 415),
        # -- formats outside the allow-list: refused without running their decoders
        Hostile("svg", b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>", 415),
        Hostile("svg_declared", b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>", 415,
                "image/svg+xml"),
        Hostile("eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", 415),
        Hostile("ico", encode(photo.resize((32, 32)), "ICO"), 415),
        Hostile("psd_magic", b"8BPS\x00\x01" + b"\0" * 64, 415),
        Hostile("qoi", encode(photo, "QOI"), 415),
        Hostile("jpeg2000_magic", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\0" * 64, 415),
        Hostile("heic_magic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 64, 415),
        Hostile("tga_no_magic", encode(photo, "TGA"), 400),
        Hostile("text_declared", b"hello", 415, "text/plain"),
    ]
    return files


# ------------------------------------------------------------------------------- modes
@dataclass(frozen=True)
class ModeCase:
    """A decodable file and the uniform RGB colour it must decode to (within ``tolerance``)."""

    name: str
    data: bytes
    rgb: tuple[int, int, int]
    tolerance: int = 0


def _uniform(mode: str, value, size=(40, 24)) -> Image.Image:
    return Image.new(mode, size, value)


def _palette_with_transparency() -> bytes:
    img = Image.new("P", (40, 24), 1)
    img.putpalette([255, 0, 0] + [0, 0, 255] + [0, 0, 0] * 254)
    return encode(img, "PNG", transparency=1)  # index 1 (blue) is fully transparent


def _palette_with_alpha_table() -> bytes:
    img = Image.new("P", (40, 24), 0)
    img.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    return encode(img, "PNG", transparency=bytes([0]))  # tRNS: index 0 alpha 0 -> transparent


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (40, 24), (200, 0, 0)), Image.new("RGB", (40, 24), (0, 0, 200))]
    params = {"lossless": True} if fmt == "WEBP" else {}
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0,
                  **params)


def mode_cases() -> list[ModeCase]:
    """Awkward but valid files; each must decode to the given colour everywhere."""
    grey16 = np.full((24, 40), 40000)
    rgb16 = np.zeros((24, 40, 3))
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 32896, 257
    rgba16 = np.zeros((24, 40, 4))
    rgba16[..., 0], rgba16[..., 3] = 65535, 0
    la16 = np.zeros((24, 40, 2))
    la16[..., 0], la16[..., 1] = 0, 32896
    return [
        ModeCase("cmyk_jpeg_adobe_inverted", encode(_uniform("CMYK", (255, 0, 0, 0)), "JPEG", quality=100),
                 (0, 255, 255), 3),
        ModeCase("cmyk_tiff", encode(_uniform("CMYK", (0, 255, 0, 0)), "TIFF"), (255, 0, 255)),
        ModeCase("rgba_fully_transparent", encode(_uniform("RGBA", (255, 0, 0, 0)), "PNG"), (255, 255, 255)),
        ModeCase("rgba_half_transparent", encode(_uniform("RGBA", (255, 0, 0, 128)), "PNG"), (255, 127, 127), 1),
        ModeCase("rgba_webp", encode(_uniform("RGBA", (0, 0, 255, 0)), "WEBP", lossless=True), (255, 255, 255)),
        ModeCase("la_transparent", encode(_uniform("LA", (0, 0)), "PNG"), (255, 255, 255)),
        ModeCase("la_opaque", encode(_uniform("LA", (60, 255)), "PNG"), (60, 60, 60)),
        ModeCase("palette_transparency_index", _palette_with_transparency(), (255, 255, 255)),
        ModeCase("palette_alpha_table", _palette_with_alpha_table(), (255, 255, 255)),
        ModeCase("palette_opaque_gif", encode(_uniform("RGB", (0, 153, 0)).convert("P"), "GIF"), (0, 153, 0)),
        ModeCase("grey_colour_key", encode(_uniform("L", 7), "PNG", transparency=7), (255, 255, 255)),
        ModeCase("rgb_colour_key", encode(_uniform("RGB", (1, 2, 3)), "PNG", transparency=(1, 2, 3)),
                 (255, 255, 255)),
        ModeCase("grey16_png", png_from_array(grey16, bit_depth=16, color_type=0), (156, 156, 156)),
        ModeCase("grey16_png_full_scale", png_from_array(np.full((24, 40), 65535), bit_depth=16, color_type=0),
                 (255, 255, 255)),
        ModeCase("rgb16_png", png_from_array(rgb16, bit_depth=16, color_type=2), (255, 128, 1)),
        ModeCase("rgba16_png_transparent", png_from_array(rgba16, bit_depth=16, color_type=6), (255, 255, 255)),
        ModeCase("la16_png_half", png_from_array(la16, bit_depth=16, color_type=4), (127, 127, 127), 1),
        ModeCase("grey32_tiff", encode(_uniform("I", 40000), "TIFF"), (156, 156, 156)),
        ModeCase("grey32_tiff_8bit_range", encode(_uniform("I", 200), "TIFF"), (200, 200, 200)),
        ModeCase("float_tiff_unit_range", encode(_uniform("F", 0.5), "TIFF"), (128, 128, 128)),
        ModeCase("one_bit_png", encode(_uniform("1", 1), "PNG"), (255, 255, 255)),
        ModeCase("one_bit_bmp_black", encode(_uniform("1", 0), "BMP"), (0, 0, 0)),
        ModeCase("grey_jpeg", encode(_uniform("L", 90), "JPEG", quality=100), (90, 90, 90), 1),
        ModeCase("ycbcr_tiff", encode(_uniform("RGB", (200, 100, 50)).convert("YCbCr"), "TIFF"),
                 (200, 100, 50), 3),
        ModeCase("animated_gif_first_frame", _animated("GIF"), (200, 0, 0), 2),
        ModeCase("animated_png_first_frame", _animated("PNG"), (200, 0, 0)),
        ModeCase("animated_webp_first_frame", _animated("WEBP"), (200, 0, 0), 2),
        ModeCase("interlaced_png", raw_png(40, 24, color_type=2, interlace=1,
                                           rows=_adam7_rows(40, 24, (10, 20, 30))), (10, 20, 30)),
        ModeCase("progressive_jpeg", encode(_uniform("RGB", (30, 60, 90)), "JPEG", progressive=True,
                                            quality=100), (30, 60, 90), 2),
    ]


def _adam7_rows(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """Filtered scanlines of a uniform RGB image in Adam7 pass order."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    out = []
    for x0, y0, dx, dy in passes:
        cols = len(range(x0, width, dx))
        rows = len(range(y0, height, dy))
        if cols == 0 or rows == 0:
            continue
        out.extend(b"\0" + bytes(rgb) * cols for _ in range(rows))
    return b"".join(out)
