"""Figure specs for the analysis page: the right traces, points, axes and markings."""

from __future__ import annotations

import json

import pytest

from app.figures import (
    AblationResult,
    BenchInfer,
    BenchPeer,
    BenchTrain,
    ServeLatency,
    ablation_figure,
    bench_figure,
    heat_table,
    infer_figure,
    infer_table,
    latency_figure,
    machine_facts,
    paper_figures,
    peer_figure,
    peer_table,
    run_figures,
    short_model,
    throughput_figure,
)
from app.paper_results import paper_results

# figure id -> number of points in each trace, in trace order
PAPER_FIGURES = {
    "table1a": [5, 5],
    "table1b": [5, 5],
    "table1c": [2, 2, 2],
    "table1d": [4, 4],
    "table1e": [4, 4],
    "table1f": [4, 4],
    "scratch-vs-mae": [3],
    "figure5": [10, 10],
    "figure7": [5, 5],
    "figure9": [8, 8],
    "table2": [2, 4],
}

BENCH = {
    "meta": {"date": "2025-01-01", "cpu": "Test CPU x2", "torch": "2.14", "model":
             "mae_vit_tiny_patch16", "img_size": 64, "batch_size": 8},
    "rows": [
        {"encoder": "mask-tokens", "decoder_depth": 8, "step_s": 0.30, "images_per_s": 26.7,
         "speedup": 1.0},
        {"encoder": "visible-only", "decoder_depth": 8, "step_s": 0.15, "images_per_s": 53.3,
         "speedup": 2.0},
        {"encoder": "mask-tokens", "decoder_depth": 1, "step_s": 0.20, "images_per_s": 40.0},
        {"encoder": "visible-only", "decoder_depth": 1, "step_s": 0.08, "images_per_s": 100.0},
    ],
}


def points(trace):
    return len(trace["y"])


def by_id():
    return {f["id"]: f for f in paper_figures(paper_results())}


def test_every_paper_figure_has_the_right_traces_and_points():
    figs = by_id()
    assert set(figs) == set(PAPER_FIGURES)
    for fig_id, expected in PAPER_FIGURES.items():
        spec = figs[fig_id]
        assert [points(t) for t in spec["data"]] == expected, fig_id
        assert spec["title"] and spec["downloads"], fig_id
        assert {d["label"] for d in spec["downloads"]} >= {"CSV", "JSON"}
        json.dumps(spec, allow_nan=False)  # what the page embeds must be strict JSON


@pytest.mark.parametrize("fig_id, default_index", [
    ("table1a", 3), ("table1b", 2), ("table1c", 1), ("table1d", 0), ("table1e", 2),
    ("table1f", 0)])
def test_table1_defaults_highlighted_and_y_axis_honest(fig_id, default_index):
    spec = by_id()[fig_id]
    ft, lin = spec["data"][:2]
    assert ft["name"] == "fine-tune" and lin["name"] == "linear probe"
    bold = [i for i, t in enumerate(ft["text"]) if t.startswith("<b>")]
    assert bold == [default_index]
    (band,) = spec["layout"]["shapes"]
    assert band["x0"] == default_index - 0.5 and band["x1"] == default_index + 0.5
    assert "(default)" in spec["layout"]["xaxis"]["ticktext"][default_index]
    lo, hi = spec["layout"]["yaxis"]["range"]
    assert 0 < lo <= min(ft["y"] + lin["y"]) and hi > max(ft["y"] + lin["y"])
    assert f"axis starts at {lo:g}, not 0" in spec["layout"]["yaxis"]["title"]["text"]
    # exact values printed on the bars
    assert [t.replace("<b>", "").replace("</b>", "") for t in ft["text"]] == [
        f"{v:.1f}" for v in ft["y"]]


def test_table1_values_come_from_the_paper():
    spec = by_id()["table1f"]
    assert spec["data"][0]["x"] == ["random 75%", "block 50%", "block 75%", "grid 75%"]
    assert spec["data"][0]["y"] == [84.9, 83.9, 82.8, 84.0]
    assert spec["data"][1]["y"] == [73.5, 72.3, 63.9, 66.0]


def test_table1c_shows_the_flops_column():
    spec = by_id()["table1c"]
    flops = spec["data"][2]
    assert flops["y"] == [3.3, 1.0] and flops["yaxis"] == "y2"
    assert spec["layout"]["yaxis2"]["range"][0] == 0


def test_figure5_marks_the_default_and_the_inferred_points():
    spec = by_id()["figure5"]
    ft, lin = spec["data"]
    assert ft["x"] == [10, 20, 30, 40, 50, 60, 70, 75, 80, 90]
    assert lin["yaxis"] == "y2"
    open_x = [x for x, s in zip(ft["x"], ft["marker"]["symbol"]) if s == "circle-open"]
    assert open_x == [10, 20, 30, 90]
    hover = dict(zip(ft["x"], (c[1] for c in ft["customdata"])))
    assert "uncertain" in hover[10] and "stated in the paper text" in hover[75]
    assert any(s["x0"] == 75 == s["x1"] for s in spec["layout"]["shapes"])
    assert any("75% default" in a["text"] for a in spec["layout"]["annotations"])
    assert any("82.5" in a["text"] for a in spec["layout"]["annotations"])  # scratch line
    assert any("10%, 20%, 30% and 90%" in n for n in spec["notes"])


def test_figure7_uses_a_log2_epoch_axis():
    spec = by_id()["figure7"]
    xaxis = spec["layout"]["xaxis"]
    assert xaxis["type"] == "log" and xaxis["tickvals"] == [100, 200, 400, 800, 1600]
    assert "log₂" in xaxis["title"]["text"]
    assert spec["data"][0]["y"] == [82.3, 83.3, 84.3, 84.9, 85.1]
    assert spec["data"][1]["y"] == [57.3, 64.4, 69.7, 73.5, 75.1]


def test_figure9_mae_vs_moco():
    spec = by_id()["figure9"]
    mae, moco = spec["data"]
    assert mae["name"] == "MAE" and moco["name"] == "MoCo v3"
    assert mae["x"] == ["0", "1", "2", "4", "6", "12", "18", "24"]
    assert mae["y"][0] == 73.5 and moco["y"][0] == 77.6 and mae["y"][-1] == 84.9
    assert any("79.1" in n for n in spec["notes"])


def test_table2_marks_the_estimated_row():
    spec = by_id()["table2"]
    ref, mae = spec["data"]
    assert ref["x"] == ["ViT-L w/ [M]<br>dec 8", "ViT-H w/ [M]<br>dec 8"]
    assert ref["y"] == [42.4, 119.6]
    assert ref["marker"]["pattern"]["shape"] == ["", "/"]
    assert "119.6 h †" in ref["text"][1] and "estimated" in ref["text"][1]
    assert "†" not in ref["text"][0]
    assert mae["y"] == [15.4, 11.6, 34.5, 29.3]
    assert "2.8× faster" in mae["text"][0]
    assert spec["layout"]["yaxis"]["range"][0] == 0


def test_bench_figure_without_and_with_our_file():
    results = paper_results()
    empty = bench_figure(results, None)
    assert [t["name"].split(" (")[0] for t in empty["data"]] == ["Paper ViT-L", "Paper ViT-H"]
    assert [points(t) for t in empty["data"]] == [2, 2]
    assert empty["data"][0]["y"] == [2.8, 3.7]

    spec = bench_figure(results, BenchTrain.model_validate(BENCH))
    assert len(spec["data"]) == 3
    ours = spec["data"][2]
    assert ours["x"] == ["decoder depth 8", "decoder depth 1"]
    assert ours["y"] == pytest.approx([2.0, 0.20 / 0.08])  # file value, then step-time ratio
    assert "mae_vit_tiny_patch16" in ours["name"] and "Test CPU x2" in ours["name"]
    assert "64 px" in ours["name"]
    assert any(d["href"] == "/api/bench/train?format=csv" for d in spec["downloads"])


@pytest.mark.parametrize("factor, paper_points", [
    ("mask_ratio", 10), ("strategy", 4), ("decoder_depth", 5), ("norm_pix", 2)])
def test_ablation_figures_without_our_results_show_only_the_paper(factor, paper_points):
    spec = ablation_figure(paper_results(), factor, None)
    assert [points(t) for t in spec["data"]] == [paper_points, paper_points]
    assert all(t["name"].startswith("paper") for t in spec["data"])


def test_ablation_figure_with_our_results():
    ours = AblationResult.model_validate({
        "factor": "mask_ratio", "meta": {"model": "tiny", "epochs": 5},
        "rows": [{"value": 0.25, "recon_loss": 0.9, "linprobe_acc": 20.0},
                 {"value": 0.5, "recon_loss": 0.8, "linprobe_acc": None},
                 {"value": 0.75, "recon_loss": 0.7, "linprobe_acc": 25.0}]})
    spec = ablation_figure(paper_results(), "mask_ratio", ours)
    assert [points(t) for t in spec["data"]] == [10, 10, 3, 3]
    assert spec["data"][2]["x"] == [25, 50, 75]  # fractions drawn as percent like Figure 5
    assert spec["data"][2]["xaxis"] == "x2" and spec["data"][3]["yaxis"] == "y3"
    assert any("small-scale reproduction</b> (tiny, 5 epochs)" in a["text"]
               for a in spec["layout"]["annotations"])

    no_probe = AblationResult.model_validate({
        "factor": "norm_pix", "meta": {},
        "rows": [{"value": True, "recon_loss": 0.5}, {"value": False, "recon_loss": 0.4}]})
    spec = ablation_figure(paper_results(), "norm_pix", no_probe)
    assert [points(t) for t in spec["data"]] == [2, 2, 2]
    assert spec["data"][2]["x"] == ["pixel (w/ norm)", "pixel (w/o norm)"]


def test_run_figures_follow_the_metrics():
    metrics = [{"step": s, "epoch": s / 10, "loss": 1 / s, "lr": 1e-4, "images_per_s": 10.0,
                "data_wait_frac": 0.2} for s in range(1, 8)]
    metrics.append({"step": 8, "loss": None, "lr": 2e-4})  # diverged line: loss missing
    loss, speed = run_figures("run-a", metrics)
    assert [points(t) for t in loss["data"]] == [7, 8]
    assert [t["meta"]["field"] for t in loss["data"]] == ["loss", "lr"]
    assert [points(t) for t in speed["data"]] == [7, 7]
    assert loss["downloads"][0]["href"] == "/api/runs/run-a/metrics?format=csv"
    json.dumps([loss, speed], allow_nan=False)


def test_heat_tables():
    results = paper_results()
    t7 = heat_table(results.get("table7_pixels_vs_tokens"))
    assert len(t7["body"]) == 3
    assert [c["text"] for c in t7["footer"][0]["cells"]] == [
        "Δ (token − norm pixel)", "0.0", "−0.2", "0.0", "0.0", "−0.1", "0.0", "−0.2"]

    t13 = heat_table(results.get("table13_robustness"))
    inc = t13["body"][0]
    assert inc["lower_is_better"] and not t13["body"][1]["lower_is_better"]
    keys = [h["key"] for h in t13["header"]]

    def alpha(row, key):
        style = row["cells"][keys.index(key)]["style"]
        return float(style.rsplit(",", 1)[1].strip(" )"))
    # IN-C: lowest error (MAE ViT-H 33.8) is darkest; IN-A: highest accuracy (76.7) is darkest
    assert alpha(inc, "MAE_ViT-H") > alpha(inc, "MAE_ViT-B")
    assert alpha(t13["body"][1], "MAE_ViT-H448") > alpha(t13["body"][1], "sup_ViT-B")

    t2 = heat_table(results.get("table2_wall_clock"))
    assert "hours_estimated" not in [h["key"] for h in t2["header"]]
    assert t2["body"][3]["cells"][3]["text"] == "119.6†"


# -- performance figures from committed benchmark files ----------------------------------------

INFER = {
    "meta": {"date": "2025-01-01T10:00:00+00:00", "cpu": "Test CPU x2", "torch": "2.14",
             "device": "cpu", "matmul_gflops": 180.0},
    "rows": [
        {"model": "mae_vit_tiny_patch16", "batch_size": 1, "ms_per_batch": 14.0,
         "images_per_s": 71.4, "gflops_per_s": 75.0, "fraction_of_matmul": 0.41},
        {"model": "mae_vit_tiny_patch16", "batch_size": 16, "ms_per_batch": 128.0,
         "images_per_s": 125.0, "gflops_per_s": 131.0, "fraction_of_matmul": 0.72},
        {"model": "mae_vit_base_patch16", "batch_size": 1, "ms_per_batch": 156.0,
         "images_per_s": 6.4, "gflops_per_s": 126.0, "fraction_of_matmul": 0.69},
    ],
}
PEER = {
    "meta": {"date": "2025-01-01", "cpu": "Test CPU x2", "torch": "2.14", "peer": "transformers"},
    "rows": [
        {"model": "mae_vit_base_patch16", "mode": "inference", "batch_size": 1,
         "ours_images_per_s": 7.0, "peer_images_per_s": 5.0, "speedup": 1.4,
         "max_abs_diff": 2e-5},
        {"model": "mae_vit_base_patch16", "mode": "train", "batch_size": 8,
         "ours_images_per_s": 2.0, "peer_images_per_s": 1.6, "speedup": 1.25,
         "max_abs_diff": None},
    ],
}
SERVE = {
    "torch": "2.14", "device": "cpu", "machine": "x86_64",
    "latency": {"post_png": {"p50_ms": 75.0, "p90_ms": 90.0, "mean_ms": 80.0, "min_ms": 60.0,
                             "n": 30},
                "bare": {"p50_ms": 50.0, "p90_ms": 70.0, "mean_ms": 55.0, "min_ms": 40.0,
                         "n": 30}},
    "overhead_p50_ms": 25.0,
    "throughput": [{"batching": b, "clients": c, "requests": 48, "images_per_s": ips}
                   for b, c, ips in ((True, 16, 30.0), (True, 1, 5.0), (True, 4, 15.0),
                                     (False, 1, 8.0), (False, 4, 5.0), (False, 16, 6.0))],
}


def test_infer_figure_bars_per_batch_size_on_a_log_axis():
    spec = infer_figure(BenchInfer.model_validate(INFER), "perf-infer", "infer")
    assert [t["name"] for t in spec["data"]] == ["batch 1", "batch 16"]
    assert [points(t) for t in spec["data"]] == [2, 1]
    assert spec["data"][0]["x"] == ["ViT-Ti/16", "ViT-B/16"]
    assert spec["layout"]["yaxis"]["type"] == "log"
    assert "Test CPU x2" in spec["title"] and "2025-01-01 10:00 UTC" in spec["notes"][0]
    assert {d["href"] for d in spec["downloads"]} == {"/api/bench/infer",
                                                      "/api/bench/infer?format=csv"}
    json.dumps(spec, allow_nan=False)
    table = infer_table(BenchInfer.model_validate(INFER))
    assert table["header"][-1]["label"] == "% of matmul ceiling"
    assert [c["text"] for c in table["body"][0]["cells"]] == ["ViT-Ti/16", "1", "14.0", "71.4",
                                                              "75", "41.0%"]


def test_peer_figure_ours_beside_transformers():
    bench = BenchPeer.model_validate(PEER)
    spec = peer_figure(bench)
    ours, peer = spec["data"]
    assert [points(ours), points(peer)] == [2, 2]
    assert ours["y"] == [7.0, 2.0] and peer["y"] == [5.0, 1.6]
    assert ours["text"] == ["1.40×", "1.25×"]
    assert ours["x"] == [["ViT-B/16", "ViT-B/16"], ["infer b1", "train b8"]]
    texts = [[c["text"] for c in row["cells"]] for row in peer_table(bench)["body"]]
    assert texts[0][-2:] == ["1.40×", "2.0e-05"] and texts[1][-1] == "–"


def test_latency_figure_p50_bars_with_p90_whiskers_and_throughput_sweep():
    serve = ServeLatency.model_validate(SERVE)
    spec = latency_figure(serve)
    (bars,) = spec["data"]
    assert bars["y"] == [50.0, 75.0]  # known paths in a fixed order: bare first
    assert bars["error_y"]["array"] == [20.0, 15.0] and bars["error_y"]["arrayminus"] == [0, 0]
    assert any("+25.0 ms" in n for n in spec["notes"])
    assert not any("resident memory" in n for n in spec["notes"])  # absent key, no number
    tp = throughput_figure(serve)
    assert [t["name"] for t in tp["data"]] == ["batching on", "batching off"]
    assert [t["x"] for t in tp["data"]] == [["1", "4", "16"]] * 2
    assert tp["data"][0]["y"] == [5.0, 15.0, 30.0]
    old = ServeLatency.model_validate({k: v for k, v in SERVE.items() if k != "throughput"})
    assert throughput_figure(old) is None


def test_malformed_performance_files_do_not_validate():
    with pytest.raises(ValueError):
        BenchInfer.model_validate({"meta": {}, "rows": []})
    with pytest.raises(ValueError):
        BenchPeer.model_validate({"rows": [{**PEER["rows"][0], "mode": "sideways"}]})
    with pytest.raises(ValueError):
        ServeLatency.model_validate({"latency": {}})


def test_machine_facts_and_model_names():
    facts = machine_facts({"date": "2025-01-01T00:10:00+00:00", "gpu": "NVIDIA H200",
                           "cpu": "Xeon", "torch": "2.11", "matmul_gflops": 721949.4})
    assert [(f["label"], f["value"]) for f in facts] == [
        ("date", "2025-01-01 00:10 UTC"), ("GPU", "NVIDIA H200"), ("CPU", "Xeon"),
        ("torch", "2.11"), ("matmul ceiling", "721,949 GFLOP/s")]
    assert short_model("mae_vit_large_patch16") == "ViT-L/16"
    assert short_model("custom") == "custom"


def test_bench_figure_draws_the_gpu_run_beside_the_cpu_one():
    gpu = {"meta": {"device": "cuda", "gpu": "NVIDIA H200", "cpu": "Xeon", "torch": "2.11",
                    "date": "2025-01-02"},
           "rows": [{"encoder": "visible-only", "decoder_depth": 8, "step_s": 0.1,
                     "images_per_s": 700.0, "speedup": 0.98},
                    {"encoder": "visible-only", "decoder_depth": 1, "step_s": 0.07,
                     "images_per_s": 890.0, "speedup": 1.25}]}
    spec = bench_figure(paper_results(), BenchTrain.model_validate(BENCH),
                        BenchTrain.model_validate(gpu))
    assert [points(t) for t in spec["data"]] == [2, 2, 2, 2]
    assert "NVIDIA H200" in spec["data"][3]["name"] and "Xeon" not in spec["data"][3]["name"]
    assert "Test CPU x2" in spec["data"][2]["name"]
    assert any("--device cuda" in n and "2025-01-02" in n for n in spec["notes"])
    assert {"/api/bench/train", "/api/bench/train_gpu"} <= {d["href"] for d in spec["downloads"]}
    only_gpu = bench_figure(paper_results(), None, BenchTrain.model_validate(gpu))
    assert [points(t) for t in only_gpu["data"]] == [2, 2, 2]


def test_latency_notes_compare_the_service_with_the_bare_call_and_in_process():
    latency = {k: {"p50_ms": v, "p90_ms": v + 1} for k, v in
               (("bare", 20.0), ("library", 26.0), ("post_json", 31.0), ("post_jpeg", 25.0))}
    overhead = {f"{post}_vs_{base}": {"ms": latency[post]["p50_ms"] - latency[base]["p50_ms"],
                                      "ratio": latency[post]["p50_ms"] / latency[base]["p50_ms"]}
                for post in ("post_json", "post_jpeg") for base in ("bare", "library")}
    serve = ServeLatency.model_validate({"latency": latency, "overhead_p50": overhead,
                                         "compute_dtype": "bf16"})
    spec = latency_figure(serve)
    assert spec["data"][0]["x"][:2] == ["bare call", "in-process"]
    assert any("(JSON + JPEG): +5.0 ms (+25%) over the bare call, -1.0 ms (-4%) over in-process"
               in n for n in spec["notes"])
    assert {"key": "compute_dtype", "label": "model runs in", "value": "bf16"} in machine_facts(serve.meta)
