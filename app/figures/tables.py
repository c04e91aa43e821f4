"""HTML-ready tables: benchmark rows and the paper's heat-tables."""

from __future__ import annotations

from typing import Any

from .files import BenchInfer, BenchPeer, ServeLatency
from ..paper_results import ResultEntry
from .performance import _latency_order
from .theme import LATENCY_NAMES, _fmt, _rate, short_model


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
