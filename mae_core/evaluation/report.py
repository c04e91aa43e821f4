"""What a classification evaluation reports: top-k accuracy, the confusion matrix and per-class
accuracy, in one shape for every protocol (k-NN, linear probe, fine-tuning)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

TOP5_MIN_CLASSES = 6  # top-5 says nothing with 5 classes or fewer (it is always 100%)


def classification_report(scores: torch.Tensor, labels: torch.Tensor,
                          classes: Sequence[str]) -> dict[str, Any]:
    """``scores`` [N, C] (logits or votes), ``labels`` [N]. Accuracies are percentages; the
    confusion matrix is ``[true][predicted]`` counts in ``classes`` order."""
    num_classes = len(classes)
    predicted = scores.argmax(dim=1)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((labels.long(), predicted.long()), torch.ones_like(labels, dtype=torch.long),
                         accumulate=True)
    per_class_total = confusion.sum(dim=1)
    per_class = [
        {"class": name, "n": int(per_class_total[i]),
         "accuracy": 100.0 * float(confusion[i, i]) / int(per_class_total[i]) if per_class_total[i] else None}
        for i, name in enumerate(classes)
    ]
    report: dict[str, Any] = {"top1": _topk(scores, labels, 1)}
    if num_classes >= TOP5_MIN_CLASSES:
        report["top5"] = _topk(scores, labels, 5)
    report.update(confusion=confusion.tolist(), per_class=per_class, num_eval=int(labels.numel()))
    return report


def _topk(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    hit = (scores.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float().mean()
    return 100.0 * float(hit)


# ------------------------------------------------------------------ the evaluation result file
RESULT_FILE = "eval.json"  # in an evaluation job's run folder
RESULT_FORMAT = "mae-lab-eval/1"
REPORT_KEYS = ("top1", "top5", "confusion", "per_class", "num_eval")


def eval_result(protocol: str, raw: dict[str, Any], *, checkpoint: str, dataset: str,
                elapsed_s: float | None = None) -> dict[str, Any]:
    """One document for every protocol's result: what was evaluated, on how much data, with
    which schedule, the report (top-1, top-5 past five classes, confusion, per-class accuracy)
    and the curves (per epoch: loss and, for fine-tuning, validation top-1)."""
    config = raw.get("config") or {}
    curves = [{k: v for k, v in row.items() if k in ("epoch", "loss", "top1", "top5")}
              for row in raw.get("history") or []]
    epochs = config.get("epochs")
    schedule = (f"k={config.get('k')}, T={config.get('temperature')}" if protocol == "knn"
                else f"{epochs} epochs, batch {config.get('batch_size')}")
    if protocol == "finetune" and config.get("tune_blocks") is not None:
        schedule += f", last {config['tune_blocks']} blocks tuned"
    return {
        "format": RESULT_FORMAT, "protocol": protocol, "checkpoint": checkpoint, "dataset": dataset,
        "classes": raw.get("classes"), "num_train": raw.get("num_train"), "num_val": raw.get("num_val"),
        "schedule": schedule, "pool": config.get("pool"),
        **{k: raw[k] for k in REPORT_KEYS if k in raw},
        "curves": curves, "best": raw.get("best"), "elapsed_s": elapsed_s, "config": config,
    }
