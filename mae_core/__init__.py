"""MAE Lab core library: paper-exact Masked Autoencoders (He et al. 2021) for PyTorch.

Public API::

    from mae_core import create_model, load_model, save_model, Reconstructor
    model = create_model("mae_vit_base_patch16")
    out = model(imgs, mask_ratio=0.75)          # out.loss, out.pred, out.mask, out.ids_restore
"""

import os as _os

# OpenMP worker threads (torch, MKL, oneDNN) keep spinning for up to 300k iterations after each
# parallel region. In the web server that holds a core for milliseconds after every forward pass,
# away from the threads encoding the answer (measured: 3-4 ms per request on 2 cores). 10k
# still spans the gaps between the ops of a forward pass (no measurable cost in-process). Only
# takes effect when mae_core is imported before torch; an explicit value wins.
_os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from .checkpoint import CheckpointInfo, list_checkpoints, load_model, load_state_dict, save_model  # noqa: E402
from .config import ModelConfig
from .errors import (
    CheckpointError,
    DecoderMissingError,
    ImageDecodeError,
    InvalidParameterError,
    MAEError,
    UnknownModelError,
    UnsafeCheckpointError,
    UnsupportedImageError,
)
from .masking import list_strategies, mask_scores, sample_mask
from .model import MAEOutput, MaskedAutoencoderViT, create_model
from .presets import get_preset, list_presets, register_preset
from .reconstruct import PreparedImage, Reconstruction, Reconstructor, pick_device

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "CheckpointInfo", "DecoderMissingError", "ImageDecodeError",
    "InvalidParameterError", "MAEError", "MAEOutput", "MaskedAutoencoderViT", "ModelConfig",
    "PreparedImage", "Reconstruction", "Reconstructor", "UnknownModelError", "UnsafeCheckpointError",
    "UnsupportedImageError", "create_model", "get_preset", "list_checkpoints", "list_presets",
    "list_strategies", "load_model", "load_state_dict", "mask_scores", "pick_device",
    "register_preset", "sample_mask", "save_model",
]
