"""Uploaded bytes → a decoded RGB PIL image, refusing what is too large or not an image.

Order of checks, each before any pixel is decoded: size in bytes (413), declared content type
(415), empty (400), signature of a known non-allowed format (415), header parse with only the
allowed formats' parsers (400 when no allowed format matches), pixel count from the header (413;
Pillow's decompression-bomb warning counts as an error too), then the work and memory the decode
would take, estimated from the header (413): the number of JPEG scans (a progressive JPEG can
repeat a tiny scan thousands of times, each one a pass over the whole image), a TIFF's tile or
strip size against the image (one huge tile behind a tiny image), and the decoder's memory per
pixel (lossless WebP needs ~16 bytes a pixel). Only then are the pixels decoded (400 when they
are damaged or truncated).

The decoded image is turned upright (EXIF), reduced to at most ``WORKING_PIXELS`` (JPEGs are
decoded at 1/2, 1/4 or 1/8 scale when that is enough) and converted to RGB, so a request waiting
in the inference queue holds at most ~12 MB, whatever was uploaded.
"""

from __future__ import annotations

import io
import math
import warnings

from PIL import Image, UnidentifiedImageError

from mae_core.errors import ImageDecodeError, UnsupportedImageError
from mae_core.imaging import apply_exif_orientation, to_rgb

from .errors import PayloadTooLargeError

# Pillow format names whose parsers may run on an upload (Image.open(formats=...)).
OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# What those parsers may report (MPO is how many phones' JPEGs identify).
ALLOWED_FORMATS = {*OPEN_FORMATS, "MPO"}
ALLOWED_TYPES = {
    "image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp", "image/gif",
    "image/bmp", "image/x-ms-bmp", "image/tiff",
}
# Generic types that say nothing about the content; the bytes decide.
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
ACCEPTED_TEXT = "JPEG, PNG, WebP, GIF, BMP or TIFF"
# Decoded images larger than this are scaled down (aspect kept) before they are queued; every
# model input is far smaller (224x224 = 0.05 MP for the default checkpoint).
WORKING_PIXELS = 4_000_000
# Defaults of the decode-work limits (Settings.max_jpeg_scans / max_decode_bytes). Ordinary
# progressive JPEGs have ~10 scans (libjpeg-turbo's own -maxscans exists for this bomb).
MAX_JPEG_SCANS = 100
MAX_DECODE_BYTES = 256 * 2**20
# Decoder memory per pixel, in bytes, beyond which the estimate below refuses: Pillow keeps most
# modes in 4 bytes a pixel; libwebp's lossless decoder holds ~4 ARGB copies (601 MB measured for
# 39.6 MP); a progressive JPEG keeps every DCT coefficient (2 bytes x up to 3 components).
_BYTES_PER_PIXEL = {"WEBP": 16, "PROGRESSIVE_JPEG": 6}
# A tile or strip may exceed the image it belongs to (writers round up), but not by this much.
_TILE_SLACK = 4
_TILE_FLOOR_PIXELS = 1 << 20

# Signatures of formats refused with 415 (recognised, not decoded). Anything else that no allowed
# parser accepts is "not an image" (400).
_OTHER_SIGNATURES: tuple[tuple[str, tuple[bytes, ...]], ...] = (
    ("PDF", (b"%PDF",)),
    ("PostScript/EPS", (b"%!PS", b"\xc5\xd0\xd3\xc6")),
    ("ICO", (b"\x00\x00\x01\x00",)),
    ("Photoshop PSD", (b"8BPS",)),
    ("QOI", (b"qoif",)),
    ("JPEG 2000", (b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")),
    ("JPEG XL", (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")),
    ("DDS", (b"DDS ",)),
    ("ICNS", (b"icns",)),
    ("GIMP XCF", (b"gimp xcf",)),
    ("FITS", (b"SIMPLE  =",)),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}


def check_content_type(content_type: str | None) -> None:
    """Raise UnsupportedImageError when the declared type is clearly not a supported image."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared in GENERIC_TYPES or declared in ALLOWED_TYPES:
        return
    if declared.startswith("image/"):
        raise UnsupportedImageError(
            f"{declared} images are not supported; send a {ACCEPTED_TEXT} file"
        )
    raise UnsupportedImageError(
        f"the uploaded file has type {declared}, not an image; send a {ACCEPTED_TEXT} file "
        "in the 'image' field"
    )


def sniff_other_format(data: bytes) -> str | None:
    """The name of a recognised but refused format ``data`` starts with, else None."""
    for name, prefixes in _OTHER_SIGNATURES:
        if data.startswith(prefixes):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF/AVIF"
    head = data[:256].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        return "SVG"
    return None


def decode_image(data: bytes, content_type: str | None, max_bytes: int, max_pixels: int, *,
                 max_scans: int = MAX_JPEG_SCANS, max_decode_bytes: int = MAX_DECODE_BYTES) -> Image.Image:
    """Decode an upload into an upright RGB image of at most ``WORKING_PIXELS``.

    Runs Pillow, so call it off the event loop (the route bounds how many run at once).
    """
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"the image is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.1f} MiB "
            "(MAE_MAX_UPLOAD_BYTES); send a smaller file"
        )
    check_content_type(content_type)
    if not data:
        raise ImageDecodeError("the uploaded image is empty (0 bytes); attach the file's contents")
    other = sniff_other_format(data)
    if other is not None:
        raise UnsupportedImageError(f"{other} files are not supported; send a {ACCEPTED_TEXT} file")
    img = open_header(data, max_pixels)
    check_decode_cost(img, data, max_scans, max_decode_bytes)
    with _bombs_are_errors():
        _draft(img, WORKING_PIXELS)
        try:
            img.load()
        except MemoryError:
            raise PayloadTooLargeError("the image is too large to decode; send a smaller image") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PayloadTooLargeError(f"the image has too many pixels: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - any decoder failure on untrusted bytes is a 400
            raise ImageDecodeError(
                f"the image is damaged or truncated ({_reason(exc)}); send an intact "
                f"{ACCEPTED_TEXT} file"
            ) from None
    img = apply_exif_orientation(img, in_place=True)
    if img.mode in ("1", "P", "PA"):
        img = to_rgb(img)  # resizing these would fall back to nearest-neighbour sampling
    return to_rgb(shrink_to(img, WORKING_PIXELS))


def open_header(data: bytes, max_pixels: int) -> Image.Image:
    """Parse the header with the allowed formats' parsers only; check the pixel count."""
    try:
        with _bombs_are_errors():
            img = Image.open(io.BytesIO(data), formats=OPEN_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLargeError(f"the image has too many pixels: {exc}") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"the uploaded file is not a {ACCEPTED_TEXT} image (its first bytes match none of "
            "them, or its header is broken); send an intact image file"
        ) from None
    except Exception as exc:  # noqa: BLE001 - header parsers may raise anything on bad input
        raise ImageDecodeError(
            f"the uploaded file could not be read as an image ({_reason(exc)}); "
            f"send an intact {ACCEPTED_TEXT} file"
        ) from None
    if img.format not in ALLOWED_FORMATS:
        raise UnsupportedImageError(f"{img.format} images are not supported; send a {ACCEPTED_TEXT} file")
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageDecodeError("the image has no pixels (width or height is 0)")
    if width * height > max_pixels:
        raise PayloadTooLargeError(
            f"the image is {width}x{height} = {width * height / 1e6:.1f} megapixels; the limit is "
            f"{max_pixels / 1e6:.1f} (MAE_MAX_IMAGE_PIXELS); send a smaller image"
        )
    return img


def jpeg_scan_count(data: bytes) -> int:
    """Start-of-scan markers in a JPEG. Entropy-coded data never holds FF DA (a coded FF is
    always followed by 00 or a restart marker), so counting the bytes counts the scans; an APP
    segment could hold the pair by chance, which only ever counts too many."""
    return data.count(b"\xff\xda")


def check_decode_cost(img: Image.Image, data: bytes, max_scans: int, max_decode_bytes: int) -> None:
    """Refuse (413) an image whose decode would take more passes or memory than allowed,
    from what its header says; nothing is decoded here."""
    width, height = img.size
    per_pixel = 4
    if img.format in ("JPEG", "MPO"):
        scans = jpeg_scan_count(data)
        if scans > max_scans:
            raise PayloadTooLargeError(
                f"the JPEG has {scans} scans; the limit is {max_scans} (MAE_MAX_JPEG_SCANS), and "
                "each scan is a pass over the whole image; send it as a baseline JPEG or a PNG")
        if img.info.get("progressive") or img.info.get("progression"):
            per_pixel = _BYTES_PER_PIXEL["PROGRESSIVE_JPEG"]
    per_pixel = _BYTES_PER_PIXEL.get(img.format or "", per_pixel)
    cost = width * height * per_pixel
    if img.format == "TIFF":
        cost += _tiff_block_bytes(img)
    if cost > max_decode_bytes:
        raise PayloadTooLargeError(
            f"decoding this {img.format} image ({width}x{height}) would take about "
            f"{cost / 2**20:.0f} MiB; the limit is {max_decode_bytes / 2**20:.0f} MiB "
            "(MAE_MAX_DECODE_BYTES); send a smaller image or another format (PNG, JPEG)")


def _tiff_block_bytes(img: Image.Image) -> int:
    """The buffer libtiff allocates for one tile or strip; refuses blocks far larger than the
    image (a 16x16 image with one 16384x16384 tile decodes 768 MB)."""
    tags = getattr(img, "tag_v2", {})
    width, height = img.size
    tile_w, tile_h = tags.get(322), tags.get(323)
    if tile_w and tile_h:
        block_w, block_h = int(tile_w), int(tile_h)
    else:
        rows = tags.get(278) or height
        block_w, block_h = width, min(int(rows), height)  # libtiff clamps strips to the image
    if block_w * block_h > max(_TILE_SLACK * width * height, _TILE_FLOOR_PIXELS):
        raise PayloadTooLargeError(
            f"the TIFF declares {width}x{height} pixels but stores them in {block_w}x{block_h} "
            "blocks (tiles or strips), far larger than the image; save it again without tiling")
    samples = int(tags.get(277) or 1)
    bits = tags.get(258) or (8,)
    depth = max(bits) if isinstance(bits, tuple) else int(bits)
    return block_w * block_h * samples * max(1, depth // 8)


def shrink_to(img: Image.Image, max_pixels: int) -> Image.Image:
    """``img`` scaled down (aspect kept, each side at least 1 px) to at most ``max_pixels``."""
    width, height = img.size
    if width * height <= max_pixels:
        return img
    scale = math.sqrt(max_pixels / (width * height))
    size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    gap = None if img.mode.startswith(("I", "F")) else 3.0  # Image.reduce lacks these modes
    return img.resize(size, Image.Resampling.BICUBIC, reducing_gap=gap)


def _draft(img: Image.Image, max_pixels: int) -> None:
    """Let libjpeg decode a large JPEG at a reduced scale that still covers ``max_pixels``."""
    width, height = img.size
    if img.format in ("JPEG", "MPO") and width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        img.draft(img.mode, (math.ceil(width * scale), math.ceil(height * scale)))


class _bombs_are_errors(warnings.catch_warnings):
    """Inside: Pillow's DecompressionBombWarning is raised as an exception."""

    def __enter__(self):
        result = super().__enter__()
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return result


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__
