"""The form fields and panel encoding every reconstructing route shares (``POST /reconstruct``,
``POST /reconstruct/compare``): one definition, so neither router imports the other."""

from __future__ import annotations

import base64
import json
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import File, Form, UploadFile

from mae_core.errors import InvalidParameterError
from mae_core.fields import MASK_RATIO, SEED
from mae_core.figure import encode_image
from mae_core.masking import MaskRequest, ordered_strategies

MAX_MASK_CELLS = 64 * 64
MAX_MASK_CHARS = 16 * MAX_MASK_CELLS  # room for spaces and newlines around every 0/1


def parse_mask(text: str) -> np.ndarray:
    """The ``mask`` form field (JSON rows of 0/1) as a uint8 array; 422 on anything else."""
    if len(text) > MAX_MASK_CHARS:
        raise InvalidParameterError(f"mask is longer than {MAX_MASK_CHARS} characters; send one "
                                    "0/1 entry per patch")
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParameterError(f"mask is not valid JSON ({exc.msg}); send e.g. [[0,1],[1,1]]") from None
    except RecursionError:
        raise InvalidParameterError("mask is nested too deeply; send a list of rows of 0/1") from None
    if (not isinstance(rows, list) or not rows or not all(isinstance(r, list) and r for r in rows)
            or len({len(r) for r in rows}) != 1):
        raise InvalidParameterError("mask must be a non-empty JSON list of equally long rows of 0/1")
    if len(rows) * len(rows[0]) > MAX_MASK_CELLS:
        raise InvalidParameterError(f"mask has more than {MAX_MASK_CELLS} cells; send one entry per patch")
    if not all(type(v) is int and v in (0, 1) for r in rows for v in r):
        raise InvalidParameterError("mask entries must be the integers 0 (visible) or 1 (removed)")
    return np.asarray(rows, dtype=np.uint8)


# The form fields every reconstructing route takes (POST /reconstruct, /reconstruct/compare).
ImageField = Annotated[UploadFile, File(
    description="the picture: JPEG, PNG, WebP, GIF, BMP or TIFF", examples=["fox.jpg"])]
ResizeField = Annotated[Literal["crop", "keep-aspect"], Form(
    description="crop: resize the short side and centre-crop (default); keep-aspect: a "
    "patch grid with the image's aspect ratio", examples=["crop"])]


def mask_request(
    # Bounds are documented from the FieldSpec and checked once, by MaskRequest.sampled.
    mask_ratio: Annotated[float, Form(
        description=f"fraction of patches to remove, {MASK_RATIO.bounds_text()} (ignored when "
        "`mask` is sent; grid needs exactly 0.75; at a given image size it must remove at least "
        "one patch and keep one)", examples=[0.75],
        json_schema_extra={"exclusiveMinimum": MASK_RATIO.minimum,
                           "exclusiveMaximum": MASK_RATIO.maximum})] = MASK_RATIO.default,
    strategy: Annotated[str, Form(
        description="masking strategy: random (paper default), block (BEiT-style) or grid "
        "(keeps one patch per 2x2 cell; ratio 0.75 only)", examples=["random"],
        json_schema_extra={"enum": ordered_strategies()})] = "random",
    seed: Annotated[int | None, Form(
        json_schema_extra={"minimum": SEED.minimum, "maximum": SEED.maximum},
        description="mask seed; omit to draw one (the reply says which)",
        examples=[1234])] = None,
    mask: Annotated[str | None, Form(
        description="explicit mask as JSON rows of 0/1 (1 = removed), one entry per patch "
        "(14x14 for a 224 px /16 model); overrides mask_ratio, strategy and seed",
        examples=["[[1,0,1,1],[0,1,1,1],[1,1,0,1],[1,1,1,0]]"])] = None,
) -> MaskRequest:
    """The mask fields, checked once; the request then travels unchanged to the model(s)."""
    return (MaskRequest.from_mask(parse_mask(mask)) if mask
            else MaskRequest.sampled(mask_ratio, strategy, seed))


def finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# Panels are encoded in parallel: Pillow's encoders release the GIL.
PANEL_ENCODERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="panel-encode")


def panel_b64(panel: np.ndarray, fmt: str) -> str:
    return base64.b64encode(encode_image(panel, fmt)).decode("ascii")
