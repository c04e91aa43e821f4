"""/analysis: our evaluation jobs' results by checkpoint and protocol, each beside the paper's
number for the same protocol (Table 1's default row, Figure 9's partial fine-tuning), with
both sides' data size and schedule spelled out, since they differ by orders of magnitude."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from .job_access import get_store
from .eval_jobs import all_results
from .paper_results import paper_results

# The paper's setting for Table 1 and Figure 9 (mae-facts: 800 epochs for ablations).
PAPER_TABLE1 = ("ViT-L/16 pretrained 800 epochs on ImageNet-1K (1.28M images, 1000 classes); "
                "Table 1 default (decoder 8 blocks x 512-d)")
PAPER_FIG9 = "ViT-L/16 on ImageNet-1K (1.28M images, 1000 classes); Figure 9"


def paper_reference(row: dict[str, Any]) -> tuple[float | None, str]:
    """(the paper's top-1 for this protocol, what it was measured on), or (None, why not)."""
    results = paper_results()
    protocol, blocks = row.get("protocol"), (row.get("config") or {}).get("tune_blocks")
    if protocol == "knn":
        return None, "the paper reports no k-NN accuracy"
    if protocol == "finetune" and blocks is not None:
        for r in results.get("figure9_partial_finetuning").rows:
            if r["blocks_finetuned"] == blocks:
                return r["MAE"], f"{PAPER_FIG9}, last {blocks} blocks fine-tuned"
        return None, f"Figure 9 has no point at {blocks} blocks"
    key = "lin" if protocol == "linprobe" else "ft"
    default = next(r for r in results.get("table1a_decoder_depth").rows if r["is_default"])
    what = "linear probe, 90 epochs" if key == "lin" else "full fine-tuning, 50 epochs"
    return default[key], f"{PAPER_TABLE1}; {what}"


def evaluation_rows(request: Request) -> list[dict[str, Any]]:
    """One row per finished evaluation job, newest first, sorted by checkpoint then protocol."""

    rows = []
    for doc in all_results(request.app.state.settings, get_store(request)):
        paper, paper_setting = paper_reference(doc)
        rows.append({
            "job": doc["job"], "checkpoint": doc["checkpoint"], "protocol": doc["protocol"],
            "dataset": doc["dataset"], "data": f"{doc['num_train']} train / {doc['num_val']} val images, "
                                             f"{len(doc.get('classes') or [])} classes",
            "schedule": doc["schedule"], "top1": doc["top1"], "top5": doc.get("top5"),
            "paper_top1": paper, "paper_setting": paper_setting,
        })
    return sorted(rows, key=lambda r: (r["checkpoint"], r["protocol"]))
