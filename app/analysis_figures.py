"""Plotly figure specs and heat-tables for the analysis page, built server-side as plain JSON.

Every builder returns a dict ``{"id", "title", "data", "layout", "notes", "downloads",
"filename"}``; ``data``/``layout`` go to ``Plotly.newPlot`` unchanged, so what the tests check
is exactly what the browser draws. Nothing here invents numbers: paper figures read the
validated paper-results file, "ours" figures read files written by ``mae bench train``,
``mae ablate`` and the trainer, and a figure without data says so instead of drawing a guess.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .paper_results import PaperResults, ResultEntry

FT_COLOR = "#2f6db5"
LIN_COLOR = "#e3872d"
MOCO_COLOR = "#7f7f7f"
REF_COLOR = "#b4b9c2"
OURS_COLOR = "#16a37f"
OURS_COLOR_2 = "#9a4fc4"
DEFAULT_FILL = "rgba(255, 205, 80, 0.22)"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

Spec = dict[str, Any]


# -- result files written by the trainer's commands -------------------------------------------

class _Open(BaseModel):
    """Result files may carry more fields than the page reads; they are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class _BenchFile(_Open):
    """A benchmark file: ``meta`` (machine, date, settings) and its ``rows``."""

    meta: dict[str, Any] = Field(default_factory=dict)


class BenchRow(_Open):
    """One row of ``mae bench train``: an encoder variant at one decoder depth."""

    encoder: Literal["visible-only", "mask-tokens"]
    decoder_depth: int = Field(ge=0)
    step_s: float = Field(gt=0)
    images_per_s: float = Field(ge=0)
    speedup: float | None = Field(default=None, gt=0)


class BenchTrain(_BenchFile):
    """The ``mae bench train`` JSON file (local re-run of the paper's Table 2 comparison)."""

    rows: list[BenchRow] = Field(min_length=1)

    def speedups(self) -> dict[int, float]:
        """Visible-only speed-up per decoder depth (file value, else step-time ratio)."""
        masked = {r.decoder_depth: r for r in self.rows if r.encoder == "mask-tokens"}
        out: dict[int, float] = {}
        for row in self.rows:
            if row.encoder != "visible-only":
                continue
            if row.speedup is not None:
                out[row.decoder_depth] = row.speedup
            elif row.decoder_depth in masked:
                out[row.decoder_depth] = masked[row.decoder_depth].step_s / row.step_s
        return out

    def label(self) -> str:
        meta = self.meta
        parts = [str(meta[k]) for k in ("model",) if meta.get(k)]
        if meta.get("img_size"):
            parts.append(f"{meta['img_size']} px")
        if meta.get("batch_size"):
            parts.append(f"batch {meta['batch_size']}")
        if meta.get("device") or meta.get("gpu") or meta.get("cpu"):
            parts.append(machine_name(meta))
        return "Ours: " + (", ".join(parts) if parts else "local benchmark")


AblationFactor = Literal["mask_ratio", "strategy", "decoder_depth", "norm_pix"]
ABLATION_FACTORS: tuple[str, ...] = ("mask_ratio", "strategy", "decoder_depth", "norm_pix")


class AblationRow(_Open):
    value: str | int | float | bool | None
    recon_loss: float | None = None
    linprobe_acc: float | None = None


class AblationResult(_Open):
    """One ``mae ablate`` result file: ``bench-results/ablations/<factor>.json``."""

    factor: AblationFactor
    meta: dict[str, Any] = Field(default_factory=dict)
    rows: list[AblationRow] = Field(min_length=1)

    def setting(self) -> str:
        """What ran, from ``meta``: model, data, size, schedule (empty if meta is empty)."""
        meta = self.meta
        parts = []
        for key, fmt in (("model", "{}"), ("dataset", "{}"), ("img_size", "{} px"),
                         ("epochs", "{} epochs"), ("steps", "{} steps")):
            if meta.get(key) not in (None, ""):
                parts.append(fmt.format(meta[key]))
        return ", ".join(parts)

    def label(self) -> str:
        setting = self.setting()
        return "Ours (small scale" + (f": {setting}" if setting else "") + ")"


class BenchInferRow(_Open):
    """One row of ``mae bench infer``: a model at one batch size."""

    model: str
    batch_size: int = Field(ge=1)
    ms_per_batch: float = Field(gt=0)
    images_per_s: float = Field(ge=0)
    gflops_per_s: float | None = Field(default=None, ge=0)
    fraction_of_matmul: float | None = Field(default=None, ge=0)


class BenchInfer(_BenchFile):
    """The ``mae bench infer`` JSON file (reconstruction images/s on one device)."""

    rows: list[BenchInferRow] = Field(min_length=1)


class BenchPeerRow(_Open):
    """One row of ``mae bench peer``: ours vs Hugging Face at one mode and batch size."""

    model: str
    mode: Literal["inference", "train"]
    batch_size: int = Field(ge=1)
    ours_images_per_s: float = Field(ge=0)
    peer_images_per_s: float = Field(ge=0)
    speedup: float | None = Field(default=None, gt=0)
    max_abs_diff: float | None = Field(default=None, ge=0)


class BenchPeer(_BenchFile):
    """The ``mae bench peer`` JSON file (ours vs transformers' ViTMAEForPreTraining)."""

    rows: list[BenchPeerRow] = Field(min_length=1)


class LatencyStat(_Open):
    p50_ms: float = Field(ge=0)
    p90_ms: float | None = Field(default=None, ge=0)
    mean_ms: float | None = Field(default=None, ge=0)
    min_ms: float | None = Field(default=None, ge=0)
    n: int | None = Field(default=None, ge=0)


class ThroughputRow(_Open):
    batching: bool
    clients: int = Field(ge=1)
    requests: int | None = Field(default=None, ge=0)
    images_per_s: float = Field(ge=0)
    mean_batch_size: float | None = Field(default=None, ge=0)
    max_batch_size: int | None = Field(default=None, ge=0)
    speedup_vs_no_batching: float | None = Field(default=None, ge=0)


SERVE_META_KEYS = ("date", "cpu", "gpu", "device", "compute_dtype", "torch", "machine", "checkpoint",
                   "load_average", "torch_threads_bare", "batch_window_ms", "python")


class ServeLatency(_Open):
    """The ``python -m mae_tools.serve_bench`` JSON file: request latency and throughput of the server.

    Older files lack ``post_jpeg``, ``throughput`` and ``server_peak_rss_mb``; they load with
    those parts absent.
    """

    latency: dict[str, LatencyStat] = Field(min_length=1)
    overhead_p50_ms: float | None = None
    overhead_p50: dict[str, dict[str, float]] | None = None  # e.g. post_jpeg_vs_library: ms, ratio
    server_peak_rss_mb: float | None = Field(default=None, ge=0)
    throughput: list[ThroughputRow] = Field(default_factory=list)
    torch: str | None = None
    machine: str | None = None
    device: str | None = None
    checkpoint: str | None = None
    load_average: list[float] | None = None

    @property
    def meta(self) -> dict[str, Any]:
        """The machine and setting facts of the run, in the shape of the other files' ``meta``."""
        full = self.model_dump(mode="json")
        return {k: full[k] for k in SERVE_META_KEYS if full.get(k) not in (None, "", [])}


# -- shared helpers --------------------------------------------------------------------------

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


def _status_text(results: PaperResults, status: str) -> str:
    return results.x_status_legend.get(status, status)  # type: ignore[call-overload]


# -- Table 1 ---------------------------------------------------------------------------------

TABLE1_LABELS = {
    "table1a": ("table1a_decoder_depth", "blocks", "decoder depth (blocks)"),
    "table1b": ("table1b_decoder_width", "dim", "decoder width (dims)"),
    "table1c": ("table1c_mask_token", "case", "encoder"),
    "table1d": ("table1d_reconstruction_target", "case", "reconstruction target"),
    "table1e": ("table1e_data_augmentation", "case", "data augmentation"),
    "table1f": ("table1f_mask_sampling", "case", "mask sampling (ratio)"),
}


def _table1_category(fig_id: str, row: dict[str, Any], key: str) -> str:
    if fig_id == "table1f":
        return f"{row['case']} {row['ratio_pct']}%"
    return str(row[key])


def table1_figure(results: PaperResults, fig_id: str) -> Spec:
    """Grouped fine-tune / linear-probe bars for one Table 1 sub-table, defaults highlighted."""
    name, key, x_title = TABLE1_LABELS[fig_id]
    entry = results.get(name)
    cats = [_table1_category(fig_id, row, key) for row in entry.rows]
    defaults = [bool(row["is_default"]) for row in entry.rows]
    ticktext = [f"<b>{c}</b><br>(default)" if d else c for c, d in zip(cats, defaults)]
    ft = [float(v) for v in entry.values("ft")]  # type: ignore[arg-type]
    lin = [float(v) for v in entry.values("lin")]  # type: ignore[arg-type]
    lo, hi = _acc_range(ft + lin)
    ref = entry.paper_ref or name

    def bars(values: list[float], label: str, color: str, group: str) -> dict[str, Any]:
        return {
            "type": "bar", "name": label, "x": cats, "y": values,
            "offsetgroup": group,
            "marker": {"color": color},
            "text": [f"<b>{v:.1f}</b>" if d else f"{v:.1f}" for v, d in zip(values, defaults)],
            "textposition": "outside", "constraintext": "none",
            "cliponaxis": False,
            "customdata": ["paper default" if d else "" for d in defaults],
            "hovertemplate": f"%{{x}}<br>{label}: %{{y:.1f}}%<br>%{{customdata}}"
                             f"<extra>{ref}</extra>",
        }

    data = [bars(ft, "fine-tune", FT_COLOR, "ft"), bars(lin, "linear probe", LIN_COLOR, "lin")]
    layout = _base_layout(
        barmode="group",
        xaxis={"title": {"text": x_title}, "type": "category", "tickmode": "array",
               "tickvals": cats, "ticktext": ticktext},
        yaxis={"title": {"text": _truncated_title("top-1 accuracy (%)", lo)}, "range": [lo, hi],
               "gridcolor": "#e6e8ee"},
        shapes=[{"type": "rect", "xref": "x", "yref": "paper", "x0": i - 0.5, "x1": i + 0.5,
                 "y0": 0, "y1": 1, "fillcolor": DEFAULT_FILL, "line": {"width": 0},
                 "layer": "below"} for i, d in enumerate(defaults) if d],
    )
    notes = ["The shaded band marks the paper's default setting (the gray rows of Table 1)."
             ] + list(entry.caveats)
    if fig_id == "table1c":
        flops = [float(v) for v in entry.values("flops_relative")]  # type: ignore[arg-type]
        data.append({
            "type": "bar", "name": "training FLOPs (relative, right axis)", "x": cats,
            "y": flops, "yaxis": "y2", "offsetgroup": "flops",
            "marker": {"color": "#c9ced8", "pattern": {"shape": "/", "fgcolor": "#8a93a3"}},
            "text": [f"{v:g}×" for v in flops], "textposition": "outside", "cliponaxis": False,
            "hovertemplate": f"%{{x}}<br>training FLOPs: %{{y:g}}× <extra>{ref}</extra>",
        })
        layout["yaxis2"] = {"title": {"text": "training FLOPs (×, from 0)"}, "overlaying": "y",
                            "side": "right", "range": [0, math.ceil(max(flops) * 1.25)],
                            "showgrid": False, "tickmode": "linear", "tick0": 0, "dtick": 1,
                            "ticksuffix": "×"}
        layout["margin"]["r"] = 70
    return _spec(fig_id, entry.title, data, layout, notes=notes,
                 downloads=_result_downloads(name), source=name)


def scratch_vs_mae_figure(results: PaperResults) -> Spec:
    name = "baseline_vitl_scratch_vs_mae"
    entry = results.get(name)
    labels = [str(v) for v in entry.values("setting")]
    values = [float(v) for v in entry.values("top1")]  # type: ignore[arg-type]
    lo = math.floor((min(values) - 4) / 5) * 5
    colors = [FT_COLOR if "MAE" in label else REF_COLOR for label in labels]
    data = [{
        "type": "bar", "orientation": "h", "name": "ViT-L/16 IN1K top-1", "y": labels,
        "x": values, "marker": {"color": colors}, "text": [f"{v:.1f}" for v in values],
        "textposition": "outside", "cliponaxis": False,
        "hovertemplate": "%{y}: %{x:.1f}%<extra>Sec. 4 baseline</extra>",
    }]
    layout = _base_layout(
        height=260, showlegend=False, margin={"l": 210, "r": 40, "t": 20, "b": 60},
        xaxis={"title": {"text": f"ImageNet-1K top-1 (%) · axis starts at {lo:g}, not 0"},
               "range": [lo, max(values) + 2], "gridcolor": "#e6e8ee"},
        yaxis={"autorange": "reversed", "type": "category"},
    )
    return _spec("scratch-vs-mae", entry.title, data, layout, notes=list(entry.caveats),
                 downloads=_result_downloads(name), source=name)


# -- Figures 5, 7, 9 ------------------------------------------------------------------------

_SYMBOL = {"anchored": "diamond", "inferred": "circle", "uncertain": "circle-open"}


def _curve(results: PaperResults, entry: ResultEntry, x_key: str, y_key: str, label: str,
           color: str, *, yaxis: str = "y", x_values: list[Any] | None = None,
           x_fmt: str = "{}") -> dict[str, Any]:
    xs = x_values if x_values is not None else entry.values(x_key)
    ys = entry.values(y_key)
    status = (entry.x_status or {}).get(y_key, ["anchored"] * len(ys))
    custom = [[x_fmt.format(x), _status_text(results, s)] for x, s in zip(entry.values(x_key),
                                                                            status)]
    return {
        "type": "scatter", "mode": "lines+markers+text", "name": label, "x": xs, "y": ys,
        "yaxis": yaxis, "line": {"color": color, "width": 2.5},
        "marker": {"color": color, "size": [12 if s == "anchored" else 10 for s in status],
                   "symbol": [_SYMBOL[s] for s in status], "line": {"color": color, "width": 2}},
        "text": [f"{v:.1f}" for v in ys], "textposition": "top center",
        "textfont": {"size": 11, "color": color}, "cliponaxis": False,
        "customdata": custom,
        "hovertemplate": f"{label}: %{{y:.1f}}% at %{{customdata[0]}}<br>"
                         f"<i>%{{customdata[1]}}</i><extra>{entry.paper_ref}</extra>",
    }


def _two_panel_layout(x_axis: dict[str, Any], top: tuple[str, list[float]],
                      bottom: tuple[str, list[float]], height: int = 520) -> dict[str, Any]:
    """Fine-tune panel above linear-probe panel sharing x, as in the paper's figures.

    Each y-axis title names its curve in the curve's colour, so no legend is needed (plotly
    would draw the legend swatch with the first point's marker, which may be an "uncertain"
    open circle).
    """
    (top_label, top_range), (bottom_label, bottom_range) = top, bottom
    return _base_layout(
        height=height, showlegend=False, margin={"l": 70, "r": 30, "t": 30, "b": 60},
        xaxis={**x_axis, "anchor": "y2", "gridcolor": "#e6e8ee"},
        yaxis={"domain": [0.56, 1.0], "range": top_range, "gridcolor": "#e6e8ee",
               "title": {"text": _truncated_title(top_label, top_range[0]),
                         "font": {"color": FT_COLOR}}},
        yaxis2={"domain": [0.0, 0.44], "range": bottom_range, "gridcolor": "#e6e8ee",
                "title": {"text": _truncated_title(bottom_label, bottom_range[0]),
                          "font": {"color": LIN_COLOR}}},
    )


_MARKER_NOTE = ("Markers: ◆ value and position stated in the text; ● exact data label, position "
                "inferred (high confidence); ○ exact data label, position uncertain. Hover a "
                "point for its provenance.")


def figure5(results: PaperResults) -> Spec:
    name = "figure5_masking_ratio"
    entry = results.get(name)
    ft = [float(v) for v in entry.values("ft")]  # type: ignore[arg-type]
    lin = [float(v) for v in entry.values("lin")]  # type: ignore[arg-type]
    scratch = next(float(r["top1"]) for r in results.get("baseline_vitl_scratch_vs_mae").rows  # type: ignore[arg-type]
                   if r["setting"] == "scratch, our impl.")
    ft_range = [math.floor(min(ft + [scratch]) - 1), math.ceil(max(ft)) + 0.6]
    lin_range = _acc_range(lin, margin=4)
    data = [
        _curve(results, entry, "masking_ratio_pct", "ft", "fine-tune", FT_COLOR, x_fmt="{}%"),
        _curve(results, entry, "masking_ratio_pct", "lin", "linear probe", LIN_COLOR,
               yaxis="y2", x_fmt="{}%"),
    ]
    layout = _two_panel_layout(
        {"title": {"text": "masking ratio (%)"}, "tickvals": [10, 20, 30, 40, 50, 60, 70, 75, 80, 90],
         "range": [5, 95]},
        ("fine-tune top-1 (%)", ft_range), ("linear probe top-1 (%)", lin_range))
    layout["shapes"] = [
        {"type": "line", "xref": "x", "yref": "paper", "x0": 75, "x1": 75, "y0": 0, "y1": 1,
         "line": {"color": "#c2410c", "width": 1.5, "dash": "dash"}},
        {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": scratch,
         "y1": scratch, "line": {"color": "#666", "width": 1, "dash": "dot"}},
    ]
    layout["annotations"] = [
        {"x": 75, "y": 1.0, "xref": "x", "yref": "paper", "text": "<b>75% default</b>",
         "showarrow": False, "xanchor": "left", "yanchor": "bottom", "xshift": 4,
         "font": {"color": "#c2410c", "size": 12}},
        {"x": 0.01, "y": scratch, "xref": "paper", "yref": "y", "xanchor": "left",
         "yanchor": "bottom", "showarrow": False, "font": {"size": 11, "color": "#555"},
         "text": f"ViT-L from scratch ({scratch:.1f})"},
    ]
    return _spec("figure5", entry.title, data, layout,
                 notes=[_MARKER_NOTE] + list(entry.caveats),
                 downloads=_result_downloads(name), source=name)


def figure7(results: PaperResults) -> Spec:
    name = "figure7_training_schedule"
    entry = results.get(name)
    ft = [float(v) for v in entry.values("ft")]  # type: ignore[arg-type]
    lin = [float(v) for v in entry.values("lin")]  # type: ignore[arg-type]
    epochs = [int(v) for v in entry.values("epochs")]  # type: ignore[arg-type]
    data = [
        _curve(results, entry, "epochs", "ft", "fine-tune", FT_COLOR, x_fmt="{} epochs"),
        _curve(results, entry, "epochs", "lin", "linear probe", LIN_COLOR, yaxis="y2",
               x_fmt="{} epochs"),
    ]
    layout = _two_panel_layout(
        {"title": {"text": "pre-training epochs (log₂ scale)"}, "type": "log",
         "tickvals": epochs, "ticktext": [str(e) for e in epochs],
         "range": [math.log10(epochs[0] / 1.25), math.log10(epochs[-1] * 1.25)]},
        ("fine-tune top-1 (%)", [math.floor(min(ft)) - 1, math.ceil(max(ft)) + 0.6]),
        ("linear probe top-1 (%)", _acc_range(lin, margin=3)))
    return _spec("figure7", entry.title, data, layout, notes=[_MARKER_NOTE] + list(entry.caveats),
                 downloads=_result_downloads(name), source=name)


def figure9(results: PaperResults) -> Spec:
    name = "figure9_partial_finetuning"
    entry = results.get(name)
    blocks = [str(v) for v in entry.values("blocks_finetuned")]
    mae = [float(v) for v in entry.values("MAE")]  # type: ignore[arg-type]
    moco = [float(v) for v in entry.values("MoCo_v3")]  # type: ignore[arg-type]
    lo, hi = _acc_range(mae + moco, margin=2)
    data = [
        _curve(results, entry, "blocks_finetuned", "MAE", "MAE", FT_COLOR, x_values=blocks,
               x_fmt="{} blocks"),
        _curve(results, entry, "blocks_finetuned", "MoCo_v3", "MoCo v3", MOCO_COLOR,
               x_values=blocks, x_fmt="{} blocks"),
    ]
    data[1]["textposition"] = "bottom center"
    layout = _base_layout(
        height=420,
        xaxis={"title": {"text": "# blocks fine-tuned (0 = linear probe, 24 = full fine-tune)"},
               "type": "category", "gridcolor": "#e6e8ee"},
        yaxis={"title": {"text": _truncated_title("ImageNet-1K top-1 (%)", lo)},
               "range": [lo, hi + 0.5], "gridcolor": "#e6e8ee"},
    )
    extra = [f"{p.get('setting')}: {_fmt(p.get('value'))}% ({p.get('source')})"
             for p in entry.extra_points]
    return _spec("figure9", entry.title, data, layout,
                 notes=[_MARKER_NOTE] + list(entry.caveats) + extra,
                 downloads=_result_downloads(name), source=name)


# -- Table 2 and our benchmark -----------------------------------------------------------------

def _table2_label(row: dict[str, Any]) -> str:
    enc = str(row["encoder"])
    model, _, rest = enc.partition(",")
    mask = " w/ [M]" if "[M]" in rest else ""
    return f"{model.strip()}{mask}<br>dec {row['dec_depth']}"


def table2_figure(results: PaperResults) -> Spec:
    """Training hours per configuration; the estimated (†) bar is hatched and labelled."""
    name = "table2_wall_clock"
    entry = results.get(name)
    ref_rows = [r for r in entry.rows if "[M]" in str(r["encoder"])]
    mae_rows = [r for r in entry.rows if "[M]" not in str(r["encoder"])]

    def trace(rows: list[dict[str, Any]], label: str, color: str) -> dict[str, Any]:
        est = [bool(r["hours_estimated"]) for r in rows]
        text = []
        for r, e in zip(rows, est):
            t = f"{float(r['hours']):.1f} h"  # type: ignore[arg-type]
            if e:
                t += " †<br>(estimated)"
            if r["speedup"] is not None:
                t += f"<br>{float(r['speedup']):.1f}× faster"  # type: ignore[arg-type]
            text.append(t)
        return {
            "type": "bar", "name": label, "x": [_table2_label(r) for r in rows],
            "y": [r["hours"] for r in rows],
            "marker": {"color": color,
                       "pattern": {"shape": ["/" if e else "" for e in est],
                                   "fgcolor": "#555", "solidity": 0.35},
                       "line": {"color": ["#333" if e else color for e in est],
                                "width": [1.5 if e else 0 for e in est]}},
            "text": text, "textposition": "outside", "cliponaxis": False,
            "constraintext": "none",
            "customdata": [[_fmt(r["ft_acc"]),
                            "estimated by training ten epochs (†)" if e else "measured"]
                           for r, e in zip(rows, est)],
            "hovertemplate": "%{x}: %{y:.1f} h (%{customdata[1]})<br>fine-tune top-1: "
                             "%{customdata[0]}<extra>Table 2</extra>",
        }

    order = [_table2_label(r) for r in entry.rows]
    data = [trace(ref_rows, "encoder with mask tokens (reference)", REF_COLOR),
            trace(mae_rows, "MAE encoder (visible patches only)", FT_COLOR)]
    hours = [float(r["hours"]) for r in entry.rows]  # type: ignore[arg-type]
    layout = _base_layout(
        height=420, barmode="overlay",
        xaxis={"type": "category", "categoryorder": "array", "categoryarray": order,
               "tickangle": 0},
        yaxis={"title": {"text": "pre-training hours"},
               "range": [0, max(hours) * 1.22], "gridcolor": "#e6e8ee"},
    )
    return _spec("table2", entry.title, data, layout, notes=list(entry.caveats),
                 downloads=_result_downloads(name), source=name)


def bench_figure(results: PaperResults, bench: BenchTrain | None,
                 bench_gpu: BenchTrain | None = None) -> Spec:
    """Paper Table 2 speed-ups beside ours from ``mae bench train`` (when the files exist).

    ``bench`` is the run on this machine (``bench_train.json``), ``bench_gpu`` the committed
    GPU run (``bench_train_gpu.json``); each present file adds one bar series.
    """
    entry = results.get("table2_wall_clock")
    paper: dict[str, dict[int, float]] = {}
    for row in entry.rows:
        if row["speedup"] is None:
            continue
        model = str(row["encoder"]).split(",")[0].strip()
        paper.setdefault(model, {})[int(row["dec_depth"])] = float(row["speedup"])  # type: ignore[arg-type]
    ours = bench.speedups() if bench is not None else {}
    ours_gpu = bench_gpu.speedups() if bench_gpu is not None else {}
    depths = sorted({d for m in paper.values() for d in m} | set(ours) | set(ours_gpu),
                    reverse=True)
    cats = [f"decoder depth {d}" for d in depths]
    data = []
    for model, color in zip(paper, (FT_COLOR, "#1d3f73")):
        xs = [f"decoder depth {d}" for d in depths if d in paper[model]]
        ys = [paper[model][d] for d in depths if d in paper[model]]
        data.append({
            "type": "bar", "name": f"Paper {model} (128 TPU-v3, TensorFlow)", "x": xs, "y": ys,
            "marker": {"color": color}, "text": [f"{v:.1f}×" for v in ys],
            "textposition": "outside", "cliponaxis": False,
            "hovertemplate": f"Paper {model}, %{{x}}: %{{y:.1f}}× <extra>Table 2</extra>",
        })
    notes = ["Speed-up = pre-training time of the encoder with mask tokens ÷ time of the MAE "
             "encoder (visible patches only), same decoder depth."]
    if bench is not None or bench_gpu is not None:
        notes.append("Our models are far smaller than the paper's ViT-L/H on 128 TPUs: compare "
                     "the trend, not the value.")
    for run, speedups, color, edge in ((bench, ours, OURS_COLOR, "#0b5f49"),
                                       (bench_gpu, ours_gpu, OURS_COLOR_2, "#5b2a78")):
        if run is None:
            continue
        xs = [f"decoder depth {d}" for d in depths if d in speedups]
        ys = [speedups[d] for d in depths if d in speedups]
        label = run.label()
        data.append({
            "type": "bar", "name": label, "x": xs, "y": ys,
            "marker": {"color": color, "pattern": {"shape": ".", "fgcolor": edge,
                                                   "solidity": 0.2}},
            "text": [f"{v:.2f}×" for v in ys], "textposition": "outside", "cliponaxis": False,
            "hovertemplate": f"{label}<br>%{{x}}: %{{y:.2f}}× <extra>mae bench train</extra>",
        })
        when = run.meta.get("date")
        command = "mae bench train" if run is bench else "mae bench train --device cuda"
        notes.append(f"Ours measured by {command}{' on ' + _fmt_date(when) if when else ''}"
                     f" ({label[6:]}; torch {run.meta.get('torch', '?')}).")
    all_y = [y for t in data for y in t["y"]] or [1.0]
    layout = _base_layout(
        height=400, barmode="group",
        xaxis={"type": "category", "categoryorder": "array", "categoryarray": cats},
        yaxis={"title": {"text": "speed-up (×, from 0)"}, "range": [0, max(all_y) * 1.25],
               "gridcolor": "#e6e8ee"},
        shapes=[{"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": 1,
                 "y1": 1, "line": {"color": "#888", "width": 1, "dash": "dot"}}],
    )
    downloads = _result_downloads("table2_wall_clock")
    if bench_gpu is not None:
        downloads = [{"label": "ours GPU CSV", "href": "/api/bench/train_gpu?format=csv"},
                     {"label": "ours GPU JSON", "href": "/api/bench/train_gpu"}] + downloads
    if bench is not None:
        downloads = [{"label": "ours CSV", "href": "/api/bench/train?format=csv"},
                     {"label": "ours JSON", "href": "/api/bench/train"}] + downloads
    return _spec("bench", "Wall-clock speed-up of the MAE encoder: paper vs. this machine", data,
                 layout, notes=notes, downloads=downloads, source="table2_wall_clock")


# -- performance: our benchmark files -------------------------------------------------------

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


def infer_figure(bench: BenchInfer, fig_id: str, name: str) -> Spec:
    """Images/s per model, one bar per batch size (log scale), from ``mae bench infer``."""
    models = list(dict.fromkeys(r.model for r in bench.rows))
    batches = sorted({r.batch_size for r in bench.rows})
    data = []
    for i, batch in enumerate(batches):
        rows = [r for r in bench.rows if r.batch_size == batch]
        data.append({
            "type": "bar", "name": f"batch {batch}", "x": [short_model(r.model) for r in rows],
            "y": [r.images_per_s for r in rows],
            "marker": {"color": BATCH_COLORS[i % len(BATCH_COLORS)]},
            "text": [_rate(r.images_per_s) for r in rows], "textposition": "outside",
            "cliponaxis": False,
            "customdata": [[r.ms_per_batch, "–" if r.fraction_of_matmul is None else
                            f"{100 * r.fraction_of_matmul:.1f}%"] for r in rows],
            "hovertemplate": f"%{{x}}, batch {batch}<br>%{{y:,.1f}} images/s · "
                             "%{customdata[0]:.1f} ms per batch<br>%{customdata[1]} of the "
                             "matmul ceiling<extra>mae bench infer</extra>",
        })
    layout = _base_layout(
        height=360, barmode="group",
        xaxis={"type": "category", "categoryorder": "array",
               "categoryarray": [short_model(m) for m in models], "title": {"text": "model"}},
        yaxis={"type": "log", "title": {"text": "images / s (log scale)"},
               "range": _log_range([r.images_per_s for r in bench.rows]),
               "dtick": 1, "gridcolor": "#e6e8ee"},
    )
    meta = bench.meta
    setting = ", ".join(f.format(meta[k]) for k, f in (("img_size", "{} px"),
                                                        ("mask_ratio", "mask ratio {}"))
                        if meta.get(k) is not None)
    notes = [_ran_on(meta, "mae bench infer") + " One reconstruction = encoder on the visible "
             "patches + decoder" + (f", at {setting}." if setting else ".")]
    if meta.get("matmul_gflops"):
        notes.append(f"% of the matmul ceiling = achieved GFLOP/s ÷ the "
                     f"{float(meta['matmul_gflops']):,.0f} GFLOP/s a large matmul reached in the "
                     "same run on the same device.")
    title = f"Reconstruction throughput on {machine_name(meta)}"
    return _spec(fig_id, title, data, layout, notes=notes, downloads=_bench_downloads(name))


def peer_figure(bench: BenchPeer, fig_id: str = "perf-peer", name: str = "peer") -> Spec:
    """Ours vs Hugging Face transformers images/s per model, mode and batch size."""
    xs = [[short_model(r.model) for r in bench.rows],
          [f"{'infer' if r.mode == 'inference' else 'train'} b{r.batch_size}"
           for r in bench.rows]]
    peer_name = "Hugging Face transformers"
    data = [
        {"type": "bar", "name": "MAE Lab (ours)", "x": xs,
         "y": [r.ours_images_per_s for r in bench.rows], "marker": {"color": OURS_COLOR},
         "text": ["–" if r.speedup is None else f"{r.speedup:.2f}×" for r in bench.rows],
         "textposition": "outside", "cliponaxis": False,
         "hovertemplate": "ours: %{y:,.1f} images/s<br>speed-up over the peer: %{text}"
                          "<extra>mae bench peer</extra>"},
        {"type": "bar", "name": peer_name, "x": xs,
         "y": [r.peer_images_per_s for r in bench.rows], "marker": {"color": PEER_COLOR},
         "hovertemplate": "transformers: %{y:,.1f} images/s<extra>mae bench peer</extra>"},
    ]
    values = [r.ours_images_per_s for r in bench.rows] + [r.peer_images_per_s for r in bench.rows]
    layout = _base_layout(
        height=380, barmode="group",
        xaxis={"type": "multicategory"},
        yaxis={"type": "log", "title": {"text": "images / s (log scale)"},
               "range": _log_range(values), "dtick": 1, "gridcolor": "#e6e8ee"},
    )
    meta = bench.meta
    notes = [_ran_on(meta, "mae bench peer") + " Labels on our bars: speed-up = peer time ÷ our "
             "time for the same batch, weights and masks, timed interleaved in one run.",
             "max |diff| (table) is the largest absolute difference between the two models' "
             "predicted patches in inference; training rows compare speed only."]
    if meta.get("peer"):
        notes.append(f"Peer: {meta['peer']}.")
    return _spec(fig_id, f"MAE Lab vs {peer_name} on {machine_name(meta)}", data, layout,
                 notes=notes, downloads=_bench_downloads(name))


def _latency_order(serve: ServeLatency) -> list[str]:
    known = [k for k in LATENCY_NAMES if k in serve.latency]
    return known + [k for k in serve.latency if k not in LATENCY_NAMES]


def latency_figure(serve: ServeLatency) -> Spec:
    """p50 latency per request path with the p90 as the top of an error bar."""
    keys = _latency_order(serve)
    stats = [serve.latency[k] for k in keys]
    p50 = [s.p50_ms for s in stats]
    up = [max(0.0, s.p90_ms - s.p50_ms) if s.p90_ms is not None else 0.0 for s in stats]
    data = [{
        "type": "bar", "name": "p50", "x": [LATENCY_NAMES.get(k, k) for k in keys], "y": p50,
        "marker": {"color": [REF_COLOR if k in IN_PROCESS_PATHS else FT_COLOR for k in keys]},
        "error_y": {"type": "data", "symmetric": False, "array": up,
                    "arrayminus": [0.0] * len(up), "color": "#1d3f73", "thickness": 1.5,
                    "width": 8},
        "text": [f"{v:.0f} ms" for v in p50], "textposition": "inside",
        "insidetextanchor": "end", "textfont": {"color": "#ffffff"},
        "customdata": [["–" if s.p90_ms is None else f"{s.p90_ms:.1f}",
                        "–" if s.n is None else str(s.n)] for s in stats],
        "hovertemplate": "%{x}<br>p50 %{y:.1f} ms · p90 %{customdata[0]} ms "
                         "(n = %{customdata[1]})<extra>python -m mae_tools.serve_bench</extra>",
    }]
    layout = _base_layout(
        height=360, showlegend=False,
        xaxis={"type": "category",
               "title": {"text": "library call, or POST /reconstruct answering with …"}},
        yaxis={"title": {"text": "ms per request (p50; whisker to p90)"}, "rangemode": "tozero",
               "gridcolor": "#e6e8ee"},
    )
    meta = serve.meta
    notes = [_ran_on(meta, "python -m mae_tools.serve_bench") + " Bars: median latency; whiskers reach the "
             "90th percentile. The bare call is the library on a decoded image, arrays out; "
             "in-process is the server's work without HTTP (decode the upload, reconstruct, "
             "encode four PNG panels)."]
    if serve.overhead_p50:
        for name, label in (("post_json", "JSON + PNG"), ("post_jpeg", "JSON + JPEG")):
            vs_bare = serve.overhead_p50.get(f"{name}_vs_bare")
            vs_lib = serve.overhead_p50.get(f"{name}_vs_library")
            if vs_bare and vs_lib:
                notes.append(f"The service added at p50 ({label}): {vs_bare['ms']:+.1f} ms "
                             f"({vs_bare['ratio'] - 1:+.0%}) over the bare call, "
                             f"{vs_lib['ms']:+.1f} ms ({vs_lib['ratio'] - 1:+.0%}) over in-process.")
    elif serve.overhead_p50_ms is not None:
        notes.append(f"Overhead of the service over the bare call at p50: "
                     f"{serve.overhead_p50_ms:+.1f} ms.")
    if serve.server_peak_rss_mb is not None:
        notes.append(f"Peak resident memory of the server process: "
                     f"{serve.server_peak_rss_mb:,.0f} MB.")
    return _spec("perf-latency", f"Request latency of mae serve on {machine_name(meta)}", data,
                 layout, notes=notes, downloads=_bench_downloads("serve_latency"))


def throughput_figure(serve: ServeLatency) -> Spec | None:
    """Images/s against concurrent clients with dynamic batching on and off (None: no sweep)."""
    if not serve.throughput:
        return None
    clients = sorted({r.clients for r in serve.throughput})
    data = []
    for batching, label, color, dash in ((True, "batching on", OURS_COLOR, "solid"),
                                         (False, "batching off", PEER_COLOR, "dash")):
        rows = sorted((r for r in serve.throughput if r.batching is batching),
                      key=lambda r: r.clients)
        if not rows:
            continue
        data.append({
            "type": "scatter", "mode": "lines+markers+text", "name": label,
            "x": [str(r.clients) for r in rows], "y": [r.images_per_s for r in rows],
            "line": {"color": color, "width": 2.5, "dash": dash},
            "marker": {"color": color, "size": 9},
            "text": [_rate(r.images_per_s) for r in rows], "textposition": "top center",
            "textfont": {"color": color, "size": 11}, "cliponaxis": False,
            "customdata": [["–" if r.mean_batch_size is None else f"{r.mean_batch_size:.1f}",
                            "–" if r.speedup_vs_no_batching is None else
                            f"{r.speedup_vs_no_batching:.2f}×"] for r in rows],
            "hovertemplate": f"{label}, %{{x}} clients<br>%{{y:.1f}} images/s · mean batch "
                             "%{customdata[0]}<br>vs no batching: %{customdata[1]}"
                             "<extra>python -m mae_tools.serve_bench</extra>",
        })
    top = max(r.images_per_s for r in serve.throughput) or 1.0
    layout = _base_layout(
        height=360,
        xaxis={"type": "category", "categoryorder": "array",
               "categoryarray": [str(c) for c in clients],
               "title": {"text": "concurrent clients"}},
        yaxis={"title": {"text": "images / s (from 0)"}, "range": [0, top * 1.25],
               "gridcolor": "#e6e8ee"},
    )
    notes = ["Each point: the same number of requests sent by that many concurrent clients to "
             "one server, with the dynamic batcher on or off."]
    return _spec("perf-throughput", f"Server throughput on {machine_name(serve.meta)}", data,
                 layout, notes=notes, downloads=_bench_downloads("serve_latency"))


def _table(columns: list[tuple[str, str, bool]], rows: list[dict[str, Any]],
           formats: dict[str, Any]) -> dict[str, Any]:
    """A sortable table view (the shape ``heat_table`` returns) of plain rows, unshaded."""
    header = [{"key": k, "label": label, "unit": None, "numeric": numeric}
              for k, label, numeric in columns]
    body = []
    for row in rows:
        cells = []
        for key, _, numeric in columns:
            value = row.get(key)
            text = "–" if value is None else formats.get(key, _fmt)(value)
            sort = value if isinstance(value, (int, float)) and not isinstance(value, bool) \
                else ("" if value is None else str(value))
            cells.append({"text": text, "sort": sort, "numeric": numeric, "style": ""})
        body.append({"cells": cells, "lower_is_better": False})
    return {"name": None, "header": header, "body": body, "footer": [], "heat": None}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%" if value >= 0.001 else f"{100 * value:.2g}%"


def infer_table(bench: BenchInfer) -> dict[str, Any]:
    rows = [r.model_dump() for r in bench.rows]
    return _table([("model", "model", False), ("batch_size", "batch", True),
                   ("ms_per_batch", "ms / batch", True), ("images_per_s", "images / s", True),
                   ("gflops_per_s", "GFLOP/s", True),
                   ("fraction_of_matmul", "% of matmul ceiling", True)], rows,
                  {"model": short_model, "batch_size": str, "ms_per_batch": "{:.1f}".format,
                   "images_per_s": _rate, "gflops_per_s": "{:,.0f}".format,
                   "fraction_of_matmul": _pct})


def peer_table(bench: BenchPeer) -> dict[str, Any]:
    rows = [r.model_dump() for r in bench.rows]
    return _table([("model", "model", False), ("mode", "mode", False),
                   ("batch_size", "batch", True), ("ours_images_per_s", "ours images / s", True),
                   ("peer_images_per_s", "transformers images / s", True),
                   ("speedup", "speed-up", True), ("max_abs_diff", "max |diff|", True)], rows,
                  {"model": short_model, "batch_size": str, "ours_images_per_s": _rate,
                   "peer_images_per_s": _rate, "speedup": "{:.2f}×".format,
                   "max_abs_diff": lambda v: "0" if v == 0 else f"{v:.1e}"})


def latency_table(serve: ServeLatency) -> dict[str, Any]:
    rows = [{"path": LATENCY_NAMES.get(k, k), **serve.latency[k].model_dump()}
            for k in _latency_order(serve)]
    ms = "{:.1f}".format
    return _table([("path", "request", False), ("p50_ms", "p50 ms", True),
                   ("p90_ms", "p90 ms", True), ("mean_ms", "mean ms", True),
                   ("min_ms", "min ms", True), ("n", "n", True)], rows,
                  {"p50_ms": ms, "p90_ms": ms, "mean_ms": ms, "min_ms": ms, "n": str})


def throughput_table(serve: ServeLatency) -> dict[str, Any]:
    rows = [r.model_dump() for r in sorted(serve.throughput,
                                           key=lambda r: (not r.batching, r.clients))]
    return _table([("batching", "batching", False), ("clients", "clients", True),
                   ("requests", "requests", True), ("images_per_s", "images / s", True),
                   ("mean_batch_size", "mean batch", True), ("max_batch_size", "max batch", True),
                   ("speedup_vs_no_batching", "vs no batching", True)], rows,
                  {"batching": lambda v: "on" if v else "off", "clients": str, "requests": str,
                   "images_per_s": _rate, "mean_batch_size": "{:.1f}".format,
                   "max_batch_size": str, "speedup_vs_no_batching": "{:.2f}×".format})


# -- small-scale ablations -------------------------------------------------------------------

ABLATION_PAPER = {
    "mask_ratio": ("figure5_masking_ratio", "masking ratio (%)"),
    "strategy": ("table1f_mask_sampling", "mask sampling"),
    "decoder_depth": ("table1a_decoder_depth", "decoder depth (blocks)"),
    "norm_pix": ("table1d_reconstruction_target", "reconstruction target"),
}
ABLATION_TITLES = {
    "mask_ratio": "Masking ratio",
    "strategy": "Mask sampling strategy",
    "decoder_depth": "Decoder depth",
    "norm_pix": "Normalized-pixel target",
}


def _ablation_x(factor: str, value: Any) -> Any:
    if factor == "mask_ratio" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(value * 100, 4) if value <= 1 else value
    if factor == "norm_pix":
        truthy = value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
        return "pixel (w/ norm)" if truthy else "pixel (w/o norm)"
    if factor == "decoder_depth":
        return value
    return str(value)


def ablation_figure(results: PaperResults, factor: str, ours: AblationResult | None) -> Spec:
    """The paper's result for one ablation factor beside our small-scale reproduction."""
    name, x_title = ABLATION_PAPER[factor]
    entry = results.get(name)
    if factor == "mask_ratio":
        xs: list[Any] = list(entry.values("masking_ratio_pct"))
    elif factor == "strategy":
        xs = [f"{r['case']} {r['ratio_pct']}%" for r in entry.rows]
    elif factor == "decoder_depth":
        xs = list(entry.values("blocks"))
    else:
        rows = [r for r in entry.rows if str(r["case"]).startswith("pixel")]
        xs = [r["case"] for r in rows]
    if factor == "norm_pix":
        ft = [r["ft"] for r in rows]
        lin = [r["lin"] for r in rows]
    else:
        ft, lin = entry.values("ft"), entry.values("lin")
    categorical = factor in {"strategy", "norm_pix"}
    mode = "markers+text" if categorical else "lines+markers+text"
    side = [0.0, 0.46] if ours is not None else [0.0, 1.0]
    data: list[dict[str, Any]] = []
    for label, values, color in (("paper fine-tune", ft, FT_COLOR),
                                 ("paper linear probe", lin, LIN_COLOR)):
        data.append({
            "type": "scatter", "mode": mode, "name": label, "x": xs, "y": values,
            "xaxis": "x", "yaxis": "y", "line": {"color": color, "width": 2},
            "marker": {"color": color, "size": 10}, "text": [_fmt(v) for v in values],
            "textposition": "top center", "cliponaxis": False,
            "hovertemplate": f"{label}: %{{y:.1f}}% at %{{x}}<extra>{entry.paper_ref}</extra>",
        })
    lo, hi = _acc_range([float(v) for v in list(ft) + list(lin)], margin=4)  # type: ignore[arg-type]
    layout = _base_layout(
        height=400,
        margin={"l": 70, "r": 70, "t": 80, "b": 60},
        xaxis={"domain": side, "title": {"text": x_title},
               "type": "category" if categorical else "linear", "anchor": "y",
               "gridcolor": "#e6e8ee",
               **({"range": [-0.5, len(xs) - 0.5]} if categorical else {})},
        yaxis={"title": {"text": _truncated_title("paper top-1 (%)", lo)}, "range": [lo, hi + 1],
               "anchor": "x", "gridcolor": "#e6e8ee"},
        annotations=[{"text": f"<b>Paper</b> (ViT-L/16, ImageNet-1K, {entry.paper_ref})",
                      "xref": "paper", "yref": "paper", "x": side[0], "y": 1.0,
                      "xanchor": "left", "yanchor": "bottom", "showarrow": False,
                      "yshift": 34, "font": {"size": 12}}],
    )
    notes = [f"Paper values from {entry.paper_ref}."]
    downloads = _result_downloads(name)
    if ours is not None:
        oxs = [_ablation_x(factor, r.value) for r in ours.rows]
        label = ours.label()
        losses = [r.recon_loss for r in ours.rows]
        data.append({
            "type": "scatter", "mode": mode, "name": "ours: reconstruction loss", "x": oxs,
            "y": losses, "xaxis": "x2", "yaxis": "y2",
            "line": {"color": OURS_COLOR, "width": 2, "dash": "dash"},
            "marker": {"color": OURS_COLOR, "size": 10, "symbol": "square"},
            "hovertemplate": "recon loss %{y:.4f} at %{x}<extra>ours (small scale)</extra>",
        })
        accs = [r.linprobe_acc for r in ours.rows]
        layout["xaxis2"] = {"domain": [0.56, 1.0], "title": {"text": x_title},
                            "type": "category" if categorical else "linear", "anchor": "y2",
                            "gridcolor": "#e6e8ee"}
        layout["yaxis2"] = {"title": {"text": "reconstruction loss"},
                            "anchor": "x2", "gridcolor": "#e6e8ee", "rangemode": "tozero"}
        if any(a is not None for a in accs):
            data.append({
                "type": "scatter", "mode": mode, "name": "ours: linear probe", "x": oxs,
                "y": accs, "xaxis": "x2", "yaxis": "y3",
                "line": {"color": OURS_COLOR_2, "width": 2, "dash": "dot"},
                "marker": {"color": OURS_COLOR_2, "size": 10, "symbol": "diamond"},
                "hovertemplate": "linear probe %{y:.1f}% at %{x}<extra>ours (small scale)</extra>",
            })
            layout["yaxis3"] = {"title": {"text": "linear probe top-1 (%)"}, "anchor": "x2",
                                "overlaying": "y2", "side": "right", "showgrid": False,
                                "tickmode": "auto"}
        setting = ours.setting()
        layout["annotations"].append({
            "text": "<b>Ours: small-scale reproduction</b>" + (f" ({setting})" if setting else ""),
            "xref": "paper", "yref": "paper", "x": 0.56, "y": 1.0, "xanchor": "left",
            "yanchor": "bottom", "showarrow": False, "yshift": 34,
            "font": {"size": 12, "color": "#0b5f49"}})
        notes.append(f"{label}: not comparable in absolute terms to the paper's ViT-L at 800 "
                     "epochs; compare the direction of the effect.")
        downloads = [{"label": "ours CSV", "href": f"/api/ablations/{factor}?format=csv"},
                     {"label": "ours JSON", "href": f"/api/ablations/{factor}"}] + downloads
    return _spec(f"ablation-{factor}", f"{ABLATION_TITLES[factor]}: paper vs. small-scale "
                 "reproduction", data, layout, notes=notes, downloads=downloads, source=name)


# -- our training runs ---------------------------------------------------------------------

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


# -- all paper figures -------------------------------------------------------------------------

def paper_figures(results: PaperResults) -> list[Spec]:
    """Every paper figure on the page, in page order."""
    figs = [table1_figure(results, fig_id) for fig_id in TABLE1_LABELS]
    figs += [scratch_vs_mae_figure(results), figure5(results), figure7(results), figure9(results),
             table2_figure(results)]
    return figs


# -- heat-tables ---------------------------------------------------------------------------

HEAT_RGB = (47, 109, 181)


def _heat_style(value: float, lo: float, hi: float, lower_better: bool) -> str:
    t = 0.5 if hi == lo else (value - lo) / (hi - lo)
    if lower_better:
        t = 1 - t
    alpha = 0.06 + 0.5 * t
    r, g, b = HEAT_RGB
    return f"background-color: rgba({r}, {g}, {b}, {alpha:.3f})"


def heat_table(entry: ResultEntry) -> dict[str, Any]:
    """A sortable heat-table view of a paper table: header, body rows, computed footer rows.

    Numeric cells are shaded by rank within their column or row (``entry.heat``); rows listed
    in ``lower_is_better_rows`` are shaded in reverse. Parameter counts are not shaded.
    """
    cols = [c for c in entry.columns if c.kind != "flag"]  # flags show as marks (e.g. †)
    heat_cols = [c for c in cols if c.kind == "number" and c.unit != "M"]
    heat_keys = {c.key for c in heat_cols}
    styles: dict[tuple[int, str], str] = {}
    if entry.heat == "column":
        for col in heat_cols:
            vals = [r[col.key] for r in entry.rows if r[col.key] is not None]
            if len(vals) < 2:
                continue
            for i, r in enumerate(entry.rows):
                if r[col.key] is not None:
                    styles[(i, col.key)] = _heat_style(float(r[col.key]), min(vals), max(vals),  # type: ignore[arg-type]
                                                       False)
    elif entry.heat == "row":
        for i, r in enumerate(entry.rows):
            vals = [r[k] for k in heat_keys if r[k] is not None]
            lower = any(label in r.values() for label in entry.lower_is_better_rows)
            for k in heat_keys:
                if r[k] is not None and len(vals) >= 2:
                    styles[(i, k)] = _heat_style(float(r[k]), min(vals), max(vals), lower)  # type: ignore[arg-type]
    header = [{"key": c.key, "label": c.label, "unit": c.unit, "numeric": c.kind == "number"}
              for c in cols]
    body = []
    for i, r in enumerate(entry.rows):
        lower = any(label in r.values() for label in entry.lower_is_better_rows)
        cells = []
        for c in cols:
            v = r[c.key]
            text = _fmt(v)
            if entry.name == "table2_wall_clock" and c.key == "hours" and r["hours_estimated"]:
                text += "†"
            cells.append({"text": text, "sort": v if isinstance(v, (int, float)) and
                          not isinstance(v, bool) else (str(v) if v is not None else ""),
                          "numeric": c.kind == "number", "style": styles.get((i, c.key), "")})
        body.append({"cells": cells, "lower_is_better": lower})
    footer = []
    for r in entry.computed_rows():
        cells = []
        for c in cols:
            v = r[c.key]
            if c.kind == "number" and v is not None:
                text = f"{float(v):+.1f}".replace("-", "−")  # type: ignore[arg-type]
                if text in {"+0.0", "−0.0"}:
                    text = "0.0"
            else:
                text = _fmt(v) if v is not None else ""
            cells.append({"text": text, "numeric": c.kind == "number", "style": ""})
        footer.append({"cells": cells})
    return {"name": entry.name, "header": header, "body": body, "footer": footer,
            "heat": entry.heat}
