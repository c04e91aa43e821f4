"""A training run's curves (loss, learning rate, throughput) from its metrics.jsonl."""

from __future__ import annotations

from typing import Any

from .theme import FT_COLOR, LIN_COLOR, MOCO_COLOR, OURS_COLOR, Spec, _base_layout, _spec

RUN_FIELDS = {
    "loss": ("training loss", FT_COLOR, "y"),
    "lr": ("learning rate", LIN_COLOR, "y2"),
    "images_per_s": ("images / s", OURS_COLOR, "y"),
    "data_wait_frac": ("data-wait fraction", MOCO_COLOR, "y2"),
}


def _run_trace(metrics: list[dict[str, Any]], field: str) -> dict[str, Any]:
    label, color, yaxis = RUN_FIELDS[field]
    rows = [m for m in metrics if m.get(field) is not None]
    return {
        "type": "scattergl" if len(rows) > 5000 else "scatter", "mode": "lines", "name": label,
        "x": [m["step"] for m in rows], "y": [m[field] for m in rows], "yaxis": yaxis,
        "line": {"color": color, "width": 1.8},
        "customdata": [m.get("epoch") for m in rows],
        "hovertemplate": f"step %{{x}} (epoch %{{customdata:.2f}})<br>{label}: %{{y:.4g}}"
                         "<extra></extra>",
        "meta": {"field": field},
    }


def run_figures(run_id: str, metrics: list[dict[str, Any]]) -> list[Spec]:
    """Loss + lr and throughput curves for one run; traces carry ``meta.field`` for live updates."""
    downloads = [{"label": "CSV", "href": f"/api/runs/{run_id}/metrics?format=csv"},
                 {"label": "JSON", "href": f"/api/runs/{run_id}/metrics"}]
    loss = _base_layout(
        height=460,
        xaxis={"title": {"text": "step"}, "anchor": "y2", "gridcolor": "#e6e8ee"},
        yaxis={"domain": [0.42, 1.0], "title": {"text": "loss (masked-patch MSE)"},
               "gridcolor": "#e6e8ee"},
        yaxis2={"domain": [0.0, 0.30], "title": {"text": "lr"}, "exponentformat": "e",
                "gridcolor": "#e6e8ee", "rangemode": "tozero"},
    )
    speed = _base_layout(
        height=320,
        xaxis={"title": {"text": "step"}, "gridcolor": "#e6e8ee"},
        yaxis={"title": {"text": "images / s"}, "rangemode": "tozero", "gridcolor": "#e6e8ee"},
        yaxis2={"title": {"text": "time waiting for data (fraction)"}, "overlaying": "y",
                "side": "right", "range": [0, 1], "showgrid": False, "tickmode": "linear",
                "tick0": 0, "dtick": 0.25},
    )
    speed["margin"]["r"] = 70
    return [
        _spec("run-loss", f"Run {run_id}: loss and learning rate",
              [_run_trace(metrics, "loss"), _run_trace(metrics, "lr")], loss,
              downloads=downloads),
        _spec("run-speed", f"Run {run_id}: throughput",
              [_run_trace(metrics, "images_per_s"), _run_trace(metrics, "data_wait_frac")],
              speed, downloads=downloads,
              notes=["Images per second as logged by the trainer; the data-wait fraction is the "
                     "share of step time spent waiting for the input pipeline."]),
    ]
