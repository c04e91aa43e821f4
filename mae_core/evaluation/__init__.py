"""Downstream evaluation: linear probing, fine-tuning and partial fine-tuning (paper §4, A.2)."""

from .finetune import FinetuneConfig, finetune
from .linprobe import LinprobeConfig, linear_probe

__all__ = ["FinetuneConfig", "LinprobeConfig", "finetune", "linear_probe"]
