"""MAE pretraining: config, data, schedule, loop."""

from .config import RECIPES, DataConfig, OptimConfig, TrainConfig, get_recipe
from .trainer import Trainer, TrainResult

__all__ = ["DataConfig", "OptimConfig", "RECIPES", "TrainConfig", "TrainResult", "Trainer",
           "get_recipe"]
