"""Typed exceptions raised by mae_core.

Every error carries a message a user can act on. The web app maps these classes to HTTP status
codes in one place (`app/errors.py`), so new error kinds should subclass one of these.
"""

from __future__ import annotations


class MAEError(Exception):
    """Base class for every error mae_core raises on purpose."""


class InvalidParameterError(MAEError, ValueError):
    """A caller passed a value outside its allowed range (bad ratio, unknown strategy, ...)."""


class ImageDecodeError(MAEError, ValueError):
    """An image file could not be read: truncated, garbage, zero bytes."""


class UnsupportedImageError(MAEError, ValueError):
    """An image is of a format or size that is refused before decoding."""


class CheckpointError(MAEError):
    """A checkpoint file is missing, malformed, or does not match any known layout."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint would need unsafe unpickling (it carries code or unknown classes)."""


class DecoderMissingError(CheckpointError):
    """The checkpoint has an encoder only and cannot reconstruct images."""


class UnknownModelError(MAEError, KeyError):
    """A preset or checkpoint id that does not exist."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else "unknown model"


class DownloadError(MAEError):
    """A download failed or its checksum did not match."""


class TrainingError(MAEError):
    """Training cannot continue (diverged, bad data folder, bad resume state)."""
