"""The paper's figures and tables (Table 1-2, Figures 5, 7, 9), ablations beside ours."""

from __future__ import annotations

import math
from typing import Any

from .files import AblationResult
from ..paper_results import PaperResults, ResultEntry
from .theme import (
    DEFAULT_FILL,
    FT_COLOR,
    LIN_COLOR,
    MOCO_COLOR,
    OURS_COLOR,
    OURS_COLOR_2,
    REF_COLOR,
    Spec,
    _acc_range,
    _base_layout,
    _fmt,
    _result_downloads,
    _spec,
    _truncated_title,
)


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
            # upright labels of side-by-side bars ran together ("84.984.9"); turned, each
            # stays above its own bar
            "textposition": "outside", "constraintext": "none", "textangle": -90,
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
        yaxis={"title": {"text": _truncated_title("top-1 accuracy (%)", lo)},
               "range": [lo, hi + (hi - lo) * 0.12], "gridcolor": "#e6e8ee"},
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

# -- all paper figures -------------------------------------------------------------------------

def paper_figures(results: PaperResults) -> list[Spec]:
    """Every paper figure on the page, in page order."""
    figs = [table1_figure(results, fig_id) for fig_id in TABLE1_LABELS]
    figs += [scratch_vs_mae_figure(results), figure5(results), figure7(results), figure9(results),
             table2_figure(results)]
    return figs
