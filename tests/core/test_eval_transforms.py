"""The evaluation transforms are the official ones (util/datasets.py, main_linprobe.py)."""

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data.auto_augment import RandAugment
from timm.data.random_erasing import RandomErasing
from timm.data.transforms import RandomResizedCropAndInterpolation
from torchvision.transforms import InterpolationMode

from mae_core.evaluation.data import (
    OneDrawResizedCrop, eval_crop_pct, eval_transform, finetune_train_transform,
    linprobe_train_transform,
)
from mae_core.imaging import to_tensor


def _framed(side: int, border: int) -> Image.Image:
    """Grey image with a pure red frame ``border`` px wide."""
    arr = np.full((side, side, 3), 128, dtype=np.uint8)
    arr[:border], arr[-border:], arr[:, :border], arr[:, -border:] = (255, 0, 0), (255, 0, 0), \
        (255, 0, 0), (255, 0, 0)
    return Image.fromarray(arr)


def _reddest(x: torch.Tensor) -> float:
    """Largest red-minus-green value in a normalised tensor (0 for grey, ~4 for pure red)."""
    return float((x[0] * 0.229 + 0.485 - (x[1] * 0.224 + 0.456)).max())


@pytest.mark.parametrize("size,side,border", [(224, 256, 16), (224, 512, 32), (32, 36, 2)])
def test_eval_crops_the_central_87_5_percent(size, side, border):
    # resize short side to size / 0.875, centre-crop size: the outer 1/16 on each side is cut, so
    # a frame of exactly that width disappears; a plain resize to `size` would keep it
    out = eval_transform(size)(_framed(side, border))
    assert out.shape == (3, size, size)
    assert _reddest(out) < 0.2  # (bicubic downscaling bleeds a little)
    plain = to_tensor(_framed(side, border).resize((size, size), Image.Resampling.BICUBIC))
    assert _reddest(plain) > 0.5


def test_eval_short_side_and_aspect():
    img = Image.new("RGB", (400, 300), (10, 20, 30))
    assert eval_transform(224)(img).shape == (3, 224, 224)
    resize = eval_transform(224).transforms[0]
    assert resize.size == 256 and resize.interpolation == InterpolationMode.BICUBIC
    assert eval_crop_pct(224) == 0.875 and eval_crop_pct(384) == 1.0  # official rule above 224


def test_finetune_train_transform_is_timms_recipe():
    tf = finetune_train_transform(224)
    steps = tf.transforms
    crop = next(t for t in steps if isinstance(t, RandomResizedCropAndInterpolation))
    assert crop.scale == (0.08, 1.0) and crop.interpolation == InterpolationMode.BICUBIC
    ra = next(t for t in steps if isinstance(t, RandAugment))
    assert ra.num_layers == 2 and ra.ops[0].magnitude == 9 and ra.ops[0].magnitude_std == 0.5
    assert any(op.name == "Brightness" or op.name.startswith("Brightness") for op in ra.ops)
    assert any("Increasing" in op.name for op in ra.ops)  # inc1: the increasing-magnitude ops
    erase = next(t for t in steps if isinstance(t, RandomErasing))
    assert (erase.probability, erase.mode, erase.max_count) == (0.25, "pixel", 1)
    out = tf(Image.new("RGB", (300, 260), (90, 120, 200)))
    assert out.shape == (3, 224, 224)
    assert not any(isinstance(t, RandAugment) for t in finetune_train_transform(224, "").transforms)


def test_linprobe_train_transform_is_one_draw_crop_and_flip():
    tf = linprobe_train_transform(32)
    crop = tf.transforms[0]
    assert isinstance(crop, OneDrawResizedCrop) and crop.interpolation == InterpolationMode.BICUBIC
    assert crop.scale == (0.08, 1.0)
    assert tf.transforms[1].__class__.__name__ == "RandomHorizontalFlip"
    img = Image.new("RGB", (50, 40))
    torch.manual_seed(0)
    for _ in range(200):  # one draw, sides clamped to the image: always a valid box
        top, left, h, w = OneDrawResizedCrop.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3))
        assert 0 <= top <= 40 - h and 0 <= left <= 50 - w and 0 < h <= 40 and 0 < w <= 50
    assert tf(img).shape == (3, 32, 32)
