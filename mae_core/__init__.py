"""MAE Lab core library: paper-exact Masked Autoencoders (He et al. 2021) for PyTorch.

Public API::

    from mae_core import create_model, load_model, save_model, Reconstructor
    model = create_model("mae_vit_base_patch16")
    out = model(imgs, mask_ratio=0.75)          # out.loss, out.pred, out.mask, out.ids_restore
"""

from .checkpoint import CheckpointInfo, list_checkpoints, load_model, load_state_dict, save_model
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
from .reconstruct import Reconstruction, Reconstructor, pick_device

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "CheckpointInfo", "DecoderMissingError", "ImageDecodeError",
    "InvalidParameterError", "MAEError", "MAEOutput", "MaskedAutoencoderViT", "ModelConfig",
    "Reconstruction", "Reconstructor", "UnknownModelError", "UnsafeCheckpointError",
    "UnsupportedImageError", "create_model", "get_preset", "list_checkpoints", "list_presets",
    "list_strategies", "load_model", "load_state_dict", "mask_scores", "pick_device",
    "register_preset", "sample_mask", "save_model",
]
