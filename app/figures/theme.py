"""The analysis page's look (colours, fonts, layouts) and helpers every figure module shares."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

FT_COLOR = "#2f6db5"
LIN_COLOR = "#e3872d"
MOCO_COLOR = "#7f7f7f"
REF_COLOR = "#b4b9c2"
OURS_COLOR = "#16a37f"
OURS_COLOR_2 = "#9a4fc4"
DEFAULT_FILL = "rgba(255, 205, 80, 0.22)"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

Spec = dict[str, Any]

def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _acc_range(values: list[float], step: float = 5.0, margin: float = 3.0,
               headroom: float = 1.6) -> list[float]:
    """A y range that does not start at zero: the multiple of ``step`` below the data."""
    lo = math.floor((min(values) - margin) / step) * step
    hi = max(values) + headroom
    return [lo, hi]


def _truncated_title(label: str, lo: float) -> str:
    return f"{label}<br><sup>axis starts at {lo:g}, not 0</sup>"


def _base_layout(height: int = 380, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "height": height,
        "margin": {"l": 70, "r": 30, "t": 40, "b": 70},
        "font": {"family": FONT, "size": 13, "color": "#222"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#fafbfd",
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "xanchor": "left",
                   "yanchor": "bottom", "bgcolor": "rgba(255,255,255,0)"},
        "hoverlabel": {"font": {"family": FONT, "size": 12}},
        "bargap": 0.25,
    }
    layout.update(extra)
    return layout


def _result_downloads(name: str) -> list[dict[str, str]]:
    return [
        {"label": "CSV", "href": f"/api/results/{name}?format=csv"},
        {"label": "JSON", "href": f"/api/results/{name}"},
    ]


def _spec(fig_id: str, title: str, data: list[dict[str, Any]], layout: dict[str, Any], *,
          notes: list[str] | None = None, downloads: list[dict[str, str]] | None = None,
          source: str | None = None) -> Spec:
    return {
        "id": fig_id,
        "title": title,
        "source": source,
        "data": data,
        "layout": layout,
        "notes": notes or [],
        "downloads": downloads or [],
        "filename": f"mae-lab-{fig_id}",
    }


_VIT_SIZES = {"tiny": "Ti", "small": "S", "base": "B", "large": "L", "huge": "H"}
BATCH_COLORS = (FT_COLOR, LIN_COLOR, OURS_COLOR, OURS_COLOR_2, "#1d3f73", MOCO_COLOR)
PEER_COLOR = "#8a93a3"
LATENCY_NAMES = {"bare": "bare call", "library": "in-process",
                 "post_json": "JSON + PNG", "post_jpeg": "JSON + JPEG", "post_png": "PNG"}
IN_PROCESS_PATHS = ("bare", "library")


def short_model(name: str) -> str:
    """``mae_vit_base_patch16`` -> ``ViT-B/16``; other names unchanged."""
    match = re.fullmatch(r"mae_vit_([a-z]+)_patch(\d+)", name)
    if not match or match.group(1) not in _VIT_SIZES:
        return name
    return f"ViT-{_VIT_SIZES[match.group(1)]}/{match.group(2)}"


def machine_name(meta: dict[str, Any]) -> str:
    """The GPU's name for a GPU run, else the CPU model, else the device string."""
    device = str(meta.get("device") or "")
    if meta.get("gpu") and not device.startswith("cpu"):
        return str(meta["gpu"])
    if meta.get("cpu"):
        return str(meta["cpu"])
    named = {"cpu": "CPU (model not recorded)", "cuda": "GPU (name not recorded)"}
    return named.get(device.split(":")[0], device or "a machine not recorded")


def _fmt_date(value: Any) -> str:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if when.tzinfo is not None and when.utcoffset() == timedelta(0):
        return when.strftime("%Y-%m-%d %H:%M UTC")
    return when.strftime("%Y-%m-%d %H:%M") if (when.hour or when.minute) else str(value)


_FACTS: tuple[tuple[str, str, Any], ...] = (
    ("date", "date", _fmt_date),
    ("gpu", "GPU", str),
    ("cpu", "CPU", str),
    ("device", "device", str),
    ("torch", "torch", str),
    ("torch_threads", "threads", str),
    ("torch_threads_bare", "threads", str),
    ("python", "python", str),
    ("machine", "machine", str),
    ("model", "model", short_model),
    ("img_size", "image", "{} px".format),
    ("batch_size", "batch", str),
    ("amp_bf16", "bf16 autocast", lambda v: "yes" if v else "no"),
    ("compute_dtype", "model runs in", str),
    ("matmul_gflops", "matmul ceiling", lambda v: f"{float(v):,.0f} GFLOP/s"),
    ("peer", "peer", str),
    ("checkpoint", "checkpoint", str),
    ("batch_window_ms", "batching window", "{} ms".format),
    ("load_average", "load average",
     lambda v: " / ".join(f"{float(x):.2f}" for x in v) if isinstance(v, list) else str(v)),
)


def machine_facts(meta: dict[str, Any]) -> list[dict[str, str]]:
    """What ran where, as label/value pairs in a fixed order (only keys the file has)."""
    out = []
    for key, label, fmt in _FACTS:
        value = meta.get(key)
        if value is None or value == "" or value == []:
            continue
        try:
            text = fmt(value)
        except (TypeError, ValueError):
            text = str(value)
        out.append({"key": key, "label": label, "value": text})
    return out


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _log_range(values: list[float], below: float = 0.5, above: float = 3.0) -> list[float]:
    positive = [v for v in values if v > 0] or [1.0]
    return [math.log10(min(positive) * below), math.log10(max(positive) * above)]


def _bench_downloads(name: str) -> list[dict[str, str]]:
    return [{"label": "CSV", "href": f"/api/bench/{name}?format=csv"},
            {"label": "JSON", "href": f"/api/bench/{name}"}]


def _ran_on(meta: dict[str, Any], command: str) -> str:
    when = f" on {_fmt_date(meta['date'])}" if meta.get("date") else ""
    torch = f", torch {meta['torch']}" if meta.get("torch") else ""
    return f"Measured by {command}{when} ({machine_name(meta)}{torch})."
