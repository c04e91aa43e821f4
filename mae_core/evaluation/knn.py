"""k-nearest-neighbour classification on frozen encoder features: the cheapest check of what an
encoder learned (minutes on a CPU, no training).

The protocol of DINO-style evaluations (Wu et al. 2018, as in DINO's ``eval_knn.py``): features
are L2-normalised, a test image's k most cosine-similar training images vote for their class
with weight ``exp(similarity / T)``, and the class with the largest summed weight wins.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..checkpoint import load_model
from ..errors import InvalidParameterError
from ..io_utils import write_json_atomic
from ..model import MaskedAutoencoderViT
from ..reconstruct import pick_device
from .data import LabelledImageFolder, eval_transform
from .linprobe import extract_features, feature_extractor
from .report import classification_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnnConfig:
    """k-NN settings; defaults as DINO's k-NN evaluation (k=20, T=0.07, cls token features).

    Features come from the unmasked encoder on the official evaluation crops (resize the short
    side to size / 0.875, centre crop), pooled as the linear probe's (``cls`` or global ``mean``).
    """

    checkpoint: str = ""
    train_dir: str = ""
    val_dir: str = ""
    output_dir: str = ""
    k: int = 20
    temperature: float = 0.07
    pool: str = "cls"  # or "mean" (mean of the patch tokens)
    batch_size: int = 64
    device: str | None = None
    num_workers: int = 0


def knn_scores(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
               num_classes: int, k: int = 20, temperature: float = 0.07,
               chunk: int = 1024) -> torch.Tensor:
    """Weighted class votes [N_test, C]. ``k`` is capped at the number of training images."""
    if k < 1 or not temperature > 0:
        raise InvalidParameterError(f"k must be >= 1 and temperature > 0, got k={k}, T={temperature}")
    train = F.normalize(train_features.float(), dim=1)
    k = min(k, train.shape[0])
    votes = []
    for start in range(0, test_features.shape[0], chunk):  # bounded memory: chunk x N_train sims
        test = F.normalize(test_features[start:start + chunk].float(), dim=1)
        sims, index = (test @ train.T).topk(k, dim=1)
        weights = (sims / temperature).exp()
        one_hot = F.one_hot(train_labels[index].long(), num_classes).float()  # [n, k, C]
        votes.append((one_hot * weights[..., None]).sum(dim=1))
    return torch.cat(votes)


def knn_classify(config: KnnConfig, model: MaskedAutoencoderViT | None = None) -> dict[str, Any]:
    """Run the k-NN evaluation; writes ``knn.json`` in ``output_dir`` when one is given."""
    device = pick_device(config.device)
    model = (model or load_model(config.checkpoint)).to(device).eval()
    transform = eval_transform(model.config.img_size[0])
    train_set = LabelledImageFolder(config.train_dir, transform)
    val_set = LabelledImageFolder(config.val_dir, transform, classes=train_set.classes)
    extractor = feature_extractor(model, config.pool).to(device)
    tx, ty = extract_features(extractor, train_set, device, config.batch_size, config.num_workers,
                              desc="train features")
    vx, vy = extract_features(extractor, val_set, device, config.batch_size, config.num_workers,
                              desc="val features")
    scores = knn_scores(tx, ty, vx, len(train_set.classes), config.k, config.temperature)
    result = {"protocol": "knn", "config": asdict(config), "classes": train_set.classes,
              "num_train": len(train_set), "num_val": len(val_set),
              **classification_report(scores, vy, train_set.classes)}
    if config.output_dir:
        write_json_atomic(Path(config.output_dir) / "knn.json", result)
    log.info("k-NN (k=%d, T=%g): top1 %.2f%%", config.k, config.temperature, result["top1"])
    return result
