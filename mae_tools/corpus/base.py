"""Constants and the error shared by every stage of the corpus builder."""

from __future__ import annotations

from mae_core.errors import MAEError

RASTER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tga"})
MIN_SOURCE_SIDE = 224  # originals smaller than this on the short side are not used
MIN_STAMP_SIDE = 96  # a stamp's opaque bounding box must be at least this big on both sides
MAX_ASPECT = 2.0  # wider images (panoramas) are cut into several tiles of TILE_ASPECT
TILE_ASPECT = 1.5
JPEG_QUALITY = 90
DEFAULT_COMPOSITES = 300  # stamp-on-photo scenes added to the ~930 distinct photos
MANIFEST_VERSION = 1
SPLITS = ("train", "heldout")


class CorpusError(MAEError):
    """The corpus cannot be built: apt tools missing, bad output folder, no usable images."""
