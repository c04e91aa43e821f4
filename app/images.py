"""Uploaded bytes → a decoded PIL image, refusing what is too large or not an image.

Order of checks: size in bytes (413), declared content type (415), decodability (400), decoded
format (415), pixel count (413, read from the header before the pixels are decoded).
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from mae_core.errors import ImageDecodeError, UnsupportedImageError

from .errors import PayloadTooLargeError

# Pillow format names accepted (MPO is how many phones' JPEGs identify).
ALLOWED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
ALLOWED_TYPES = {
    "image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp", "image/gif",
    "image/bmp", "image/x-ms-bmp", "image/tiff",
}
# Generic types that say nothing about the content; the bytes decide.
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
ACCEPTED_TEXT = "JPEG, PNG, WebP, GIF, BMP or TIFF"


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


def decode_image(data: bytes, content_type: str | None, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode an upload. Runs Pillow, so call it off the event loop."""
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"the image is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB "
            "(MAE_MAX_UPLOAD_BYTES); send a smaller file"
        )
    check_content_type(content_type)
    if not data:
        raise ImageDecodeError("the uploaded image is empty (0 bytes); attach the file's contents")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise PayloadTooLargeError(f"the image has too many pixels: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageDecodeError(
            f"the uploaded file could not be read as an image ({type(exc).__name__}); "
            f"send an intact {ACCEPTED_TEXT} file"
        ) from None
    if img.format not in ALLOWED_FORMATS:
        raise UnsupportedImageError(
            f"{img.format} images are not supported; send a {ACCEPTED_TEXT} file"
        )
    width, height = img.size
    if width * height > max_pixels:
        raise PayloadTooLargeError(
            f"the image is {width}x{height} = {width * height / 1e6:.1f} megapixels; the limit is "
            f"{max_pixels / 1e6:.1f} (MAE_MAX_IMAGE_PIXELS); send a smaller image"
        )
    if width < 1 or height < 1:
        raise ImageDecodeError("the image has no pixels")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(
            f"the image is damaged or truncated ({exc}); send an intact {ACCEPTED_TEXT} file"
        ) from None
    return img
