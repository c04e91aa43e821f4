"""Performance figures: training and inference throughput, peers, serving latency."""

from __future__ import annotations

from .files import BenchInfer, BenchPeer, BenchTrain, ServeLatency
from ..paper_results import PaperResults
from .theme import (
    BATCH_COLORS,
    FT_COLOR,
    IN_PROCESS_PATHS,
    LATENCY_NAMES,
    OURS_COLOR,
    OURS_COLOR_2,
    PEER_COLOR,
    REF_COLOR,
    Spec,
    _base_layout,
    _bench_downloads,
    _fmt_date,
    _log_range,
    _ran_on,
    _rate,
    _result_downloads,
    _spec,
    machine_name,
    short_model,
)


# up to four bars share a decoder depth: upright labels of neighbours ran together
# ("2.8×3.01×"); turned, each stays above its own bar (as Table 1's bars)
TURNED_LABELS = {"textangle": -90, "constraintext": "none"}


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
            "textposition": "outside", "cliponaxis": False, **TURNED_LABELS,
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
            **TURNED_LABELS,
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
        yaxis={"title": {"text": "speed-up (×, from 0)"}, "range": [0, max(all_y) * 1.4],
               "gridcolor": "#e6e8ee"},  # room above the bars for the turned labels
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
