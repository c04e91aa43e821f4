"""The analysis page and its REST endpoints, through the real app factory."""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.paper_results import paper_results

PAGE_FIGURES = ["table1a", "table1b", "table1c", "table1d", "table1e", "table1f",
                "scratch-vs-mae", "figure5", "figure7", "figure9", "table2", "bench",
                "ablation-mask_ratio", "ablation-strategy", "ablation-decoder_depth",
                "ablation-norm_pix"]
PERF_FIGURES = ["perf-infer", "perf-infer-gpu", "perf-peer", "perf-peer-gpu", "perf-latency",
                "perf-throughput"]
RUN_FIGURES = ["run-loss", "run-speed"]
HEAT_TABLES = ["table3", "table4", "table5", "table6", "table7", "table12", "table13"]

BENCH = {
    "meta": {"date": "2025-01-01", "cpu": "Test CPU x2", "torch": "2.14",
             "model": "mae_vit_tiny_patch16", "img_size": 64, "batch_size": 8},
    "rows": [
        {"encoder": "mask-tokens", "decoder_depth": 8, "step_s": 0.30, "images_per_s": 26.7,
         "speedup": 1.0},
        {"encoder": "visible-only", "decoder_depth": 8, "step_s": 0.15, "images_per_s": 53.3,
         "speedup": 2.0},
        {"encoder": "mask-tokens", "decoder_depth": 1, "step_s": 0.20, "images_per_s": 40.0,
         "speedup": 1.0},
        {"encoder": "visible-only", "decoder_depth": 1, "step_s": 0.08, "images_per_s": 100.0,
         "speedup": 2.5},
    ],
}
ABLATION_MASK_RATIO = {
    "factor": "mask_ratio", "meta": {"model": "mae_vit_tiny_patch16", "img_size": 64,
                                     "epochs": 3, "dataset": "synthetic"},
    "rows": [{"value": v, "recon_loss": 0.9 - v / 2, "linprobe_acc": 20 + 10 * v}
             for v in (0.25, 0.5, 0.75, 0.9)],
}

# committed benchmark files (small literal stand-ins with the real formats)
MACHINE = {"date": "2025-02-03T04:05:06+00:00", "cpu": "Test CPU x2", "torch": "2.14.1",
           "device": "cpu", "torch_threads": 2}
BENCH_TRAIN_GPU = {
    "meta": {**MACHINE, "device": "cuda", "gpu": "Test GPU 80GB", "model": "mae_vit_large_patch16",
             "img_size": 224, "batch_size": 64},
    "rows": [
        {"encoder": "mask-tokens", "decoder_depth": 8, "step_s": 0.09, "images_per_s": 711.0,
         "speedup": 1.0},
        {"encoder": "visible-only", "decoder_depth": 8, "step_s": 0.03, "images_per_s": 2133.0,
         "speedup": 3.0},
        {"encoder": "visible-only", "decoder_depth": 1, "step_s": 0.02, "images_per_s": 3200.0,
         "speedup": 4.5},
    ],
}


def infer_row(model: str, batch: int, ms: float) -> dict:
    return {"model": model, "batch_size": batch, "ms_per_batch": ms,
            "images_per_s": 1000 * batch / ms, "gflops_per_s": 50.0,
            "fraction_of_matmul": 0.25}


BENCH_INFER = {
    "meta": {**MACHINE, "img_size": 224, "mask_ratio": 0.75, "matmul_gflops": 200.0},
    "rows": [infer_row(m, b, ms) for m, b, ms in (
        ("mae_vit_tiny_patch16", 1, 14.0), ("mae_vit_tiny_patch16", 16, 128.0),
        ("mae_vit_base_patch16", 1, 156.0), ("mae_vit_base_patch16", 16, 1859.0))],
}
BENCH_INFER_GPU = {
    "meta": {**MACHINE, "device": "cuda", "gpu": "Test GPU 80GB", "img_size": 224,
             "matmul_gflops": 700000.0},
    "rows": [infer_row("mae_vit_tiny_patch16", b, 5.7) for b in (1, 16, 64)],
}
BENCH_PEER = {
    "meta": {**MACHINE, "peer": "transformers 4.99 ViTMAEForPreTraining (sdpa attention)"},
    "rows": [
        {"model": "mae_vit_tiny_patch16", "mode": "inference", "batch_size": 1,
         "ours_images_per_s": 70.0, "peer_images_per_s": 50.0, "speedup": 1.4,
         "max_abs_diff": 3e-6},
        {"model": "mae_vit_tiny_patch16", "mode": "inference", "batch_size": 16,
         "ours_images_per_s": 125.0, "peer_images_per_s": 100.0, "speedup": 1.25,
         "max_abs_diff": 4e-6},
        {"model": "mae_vit_tiny_patch16", "mode": "train", "batch_size": 8,
         "ours_images_per_s": 30.0, "peer_images_per_s": 24.0, "speedup": 1.25,
         "max_abs_diff": None},
    ],
}


def latency(p50: float) -> dict:
    return {"p50_ms": p50, "p90_ms": p50 * 1.5, "mean_ms": p50 * 1.2, "min_ms": p50 * 0.8,
            "n": 30}


SERVE_LATENCY = {
    "benchmark": "serve_latency", "checkpoint": "mae-lab-default", "device": "cpu",
    "torch": "2.14.1", "machine": "x86_64", "load_average": [1.0, 0.5, 0.25],
    "latency": {"bare": latency(50.0), "post_json": latency(65.0), "post_jpeg": latency(70.0),
                "post_png": latency(75.0)},
    "overhead_p50_ms": 15.0, "server_peak_rss_mb": 1024.0,
    "throughput": [{"batching": b, "clients": c, "requests": 48, "images_per_s": ips,
                    "mean_batch_size": mb, "max_batch_size": int(mb),
                    "speedup_vs_no_batching": sp}
                   for b, c, ips, mb, sp in ((True, 1, 5.0, 1.0, 0.6), (True, 4, 15.0, 2.6, 2.9),
                                              (False, 1, 8.5, 1.0, 1.0),
                                              (False, 4, 5.2, 1.0, 1.0))],
}
# an older serve_latency.json: no post_jpeg, throughput or server_peak_rss_mb
SERVE_LATENCY_OLD = {
    "benchmark": "serve_latency", "device": "cpu", "torch": "2.11.0", "machine": "x86_64",
    "latency": {"bare": latency(33.0), "post_json": latency(85.0), "post_png": latency(78.0)},
    "overhead_p50_ms": 52.0,
}
PERF_FILES = {"bench_train_gpu.json": BENCH_TRAIN_GPU, "bench_infer.json": BENCH_INFER,
              "bench_infer_gpu.json": BENCH_INFER_GPU, "bench_peer.json": BENCH_PEER,
              "bench_peer_gpu.json": {**BENCH_PEER, "rows": BENCH_PEER["rows"][:2],
                                      "meta": {**BENCH_PEER["meta"], "device": "cuda",
                                               "gpu": "Test GPU 80GB"}},
              "serve_latency.json": SERVE_LATENCY}


def snapshot_png(step: int) -> bytes:
    """A small stand-in for a four-panel reconstruction figure, shaded by step."""
    img = Image.new("RGB", (256, 64), (30, 30, 30))
    for i in range(4):
        shade = min(255, 60 + step // 4 + 30 * i)
        img.paste((shade, 120, 255 - shade), (i * 64 + 2, 2, i * 64 + 62, 62))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_run(root: Path, run_id: str, steps: int = 40, *, snapshots=(0, 20, 40),
              summary: dict | None = None, tail: str = "") -> Path:
    run = root / run_id
    (run / "snapshots").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "mae_vit_tiny_patch16",
                                                 "mask_ratio": 0.75, "epochs": 4}))
    lines = []
    for s in range(1, steps + 1):
        lines.append(json.dumps({
            "step": s, "epoch": s / 10, "lr": 1.5e-4 * min(1.0, s / 10),
            "loss": 1.1 * 0.96 ** s + 0.2, "images_per_s": 40 + (s % 5),
            "data_wait_frac": 0.05, "elapsed_s": s * 0.4}))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n" + tail)
    for step in snapshots:
        (run / "snapshots" / f"step_{step:08d}.png").write_bytes(snapshot_png(step))
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    return run


def write_ours(runs_dir: Path, bench_dir: Path) -> None:
    """Fake outputs of the trainer, `mae bench train` and `mae ablate` for page tests."""
    write_run(runs_dir, "demo-run", tail='{"step": 41, "loss": 0.3')
    older = write_run(runs_dir, "older-run", steps=10, snapshots=(), summary={"final_loss": 0.5})
    hour_ago = time.time() - 3600
    for path in [older, *older.rglob("*")]:
        os.utime(path, (hour_ago, hour_ago))
    bench_dir.mkdir(parents=True, exist_ok=True)
    (bench_dir / "bench_train.json").write_text(json.dumps(BENCH))
    for name, body in PERF_FILES.items():
        (bench_dir / name).write_text(json.dumps(body))
    (bench_dir / "ablations").mkdir(exist_ok=True)
    (bench_dir / "ablations" / "mask_ratio.json").write_text(json.dumps(ABLATION_MASK_RATIO))


def make_client(monkeypatch, tmp_path: Path, with_ours: bool) -> tuple[TestClient, Path, Path]:
    runs_dir, bench_dir = tmp_path / "runs", tmp_path / "bench-results"
    monkeypatch.setenv("MAE_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("MAE_BENCH_DIR", str(bench_dir))
    if with_ours:
        write_ours(runs_dir, bench_dir)
    from app import Settings, create_app

    (tmp_path / "ckpts").mkdir()
    app = create_app(Settings(checkpoint_dir=tmp_path / "ckpts"))
    return TestClient(app), runs_dir, bench_dir


@pytest.fixture
def client(monkeypatch, tmp_path):
    return make_client(monkeypatch, tmp_path, with_ours=True)[0]


@pytest.fixture
def empty_client(monkeypatch, tmp_path):
    return make_client(monkeypatch, tmp_path, with_ours=False)[0]


# -- the page ---------------------------------------------------------------------------------

def embedded_figures(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="analysis-figures">(.*?)</script>',
                      html, re.S)
    assert match, "figure specs are embedded in the page"
    return json.loads(match.group(1))


def test_page_has_a_drawn_chart_for_every_section(client):
    r = client.get("/analysis")
    assert r.status_code == 200
    html = r.text
    specs = embedded_figures(html)
    assert set(specs) == set(PAGE_FIGURES + PERF_FIGURES + RUN_FIGURES)
    for fig_id in PAGE_FIGURES + PERF_FIGURES + RUN_FIGURES:
        assert f'data-figure="{fig_id}"' in html, fig_id
        assert f'id="{fig_id}"' in html, fig_id  # linkable anchor
    for table_id in HEAT_TABLES + ["table2"]:
        assert f'data-table="{table_id}"' in html
    for anchor in ("table1", "ablations", "downstream", "performance", "runs"):
        assert f'id="{anchor}"' in html
    # plotly is served by this server, never a CDN
    assert '<script src="/vendor/plotly.min.js"' in html
    assert not re.search(r'src="https?://', html)
    # the embedded specs are the same JSON the API serves
    api = client.get("/api/analysis/figures", params={"run": "demo-run"}).json()["figures"]
    assert api == specs


def test_page_figure_specs_have_the_right_traces(client):
    specs = client.get("/api/analysis/figures", params={"run": "demo-run"}).json()["figures"]
    counts = {fid: [len(t["y"]) for t in spec["data"]] for fid, spec in specs.items()}
    assert counts["table1a"] == [5, 5] and counts["table1c"] == [2, 2, 2]
    assert counts["figure5"] == [10, 10] and counts["figure7"] == [5, 5]
    assert counts["figure9"] == [8, 8] and counts["table2"] == [2, 4]
    assert counts["bench"] == [2, 2, 2, 2]         # paper ViT-L, ViT-H, ours CPU, ours GPU
    assert counts["perf-infer"] == [2, 2]                  # batch 1, 16 x two models
    assert counts["perf-infer-gpu"] == [1, 1, 1]           # batch 1, 16, 64 x one model
    assert counts["perf-peer"] == [3, 3]                   # ours, transformers x three rows
    assert counts["perf-peer-gpu"] == [2, 2]               # its own file, its own chart
    assert counts["perf-latency"] == [4]                   # bare, JSON, JPEG, PNG
    assert counts["perf-throughput"] == [2, 2]             # batching on, off x 1 and 4 clients
    assert counts["ablation-mask_ratio"] == [10, 10, 4, 4]  # paper ft, lin, ours loss, probe
    assert counts["ablation-strategy"] == [4, 4]           # no file: paper only
    assert counts["run-loss"] == [40, 40]                  # truncated 41st line skipped


def test_page_without_our_results_explains_how_to_make_them(empty_client):
    html = empty_client.get("/analysis").text
    assert "mae bench train" in html and 'data-empty="bench"' in html
    for factor in ("mask_ratio", "strategy", "decoder_depth", "norm_pix"):
        assert f'data-empty="{factor}"' in html
        assert f"ablations/{factor}.json" in html
    assert "<code>mae ablate</code>" in html
    assert 'data-empty="runs"' in html and "No training runs found" in html
    for name, command in (("infer", "mae bench infer"), ("infer_gpu", "mae bench infer --device cuda"),
                          ("peer", "mae bench peer"), ("peer_gpu", "mae bench peer --device cuda"),
                          ("serve_latency", "python -m mae_tools.serve_bench")):
        assert f'data-empty="bench-{name}"' in html
        assert f"<code>{command}" in html
    assert 'data-empty="bench-train_gpu"' in html and "mae bench train --device cuda" in html
    assert 'id="performance"' in html
    specs = embedded_figures(html)
    assert set(specs) == set(PAGE_FIGURES)  # no performance chart without its file
    assert len(specs["bench"]["data"]) == 2  # no invented numbers
    assert all(not t["name"].startswith("ours") for t in specs["ablation-mask_ratio"]["data"])


def test_page_table7_delta_row_is_computed(client):
    html = client.get("/analysis").text
    table7 = html.split('data-table="table7"', 1)[1].split("</table>", 1)[0]
    assert "<tfoot>" in table7 and "Δ (token − norm pixel)" in table7
    assert "delta (token - norm pixel)" not in html


def test_page_selects_a_run_by_query(client):
    html = client.get("/analysis", params={"run": "older-run"}).text
    assert 'value="older-run" selected' in html
    assert embedded_figures(html)["run-loss"]["title"].startswith("Run older-run")


def test_malformed_bench_file_is_reported_not_drawn(monkeypatch, tmp_path):
    client, _, bench_dir = make_client(monkeypatch, tmp_path, with_ours=True)
    (bench_dir / "bench_train.json").write_text('{"meta": {}, "rows": [{"encoder": "x"}]}')
    html = client.get("/analysis").text
    assert "does not match the `mae bench train` format" in html
    names = [t["name"] for t in embedded_figures(html)["bench"]["data"]]
    assert len(names) == 3 and "Test GPU 80GB" in names[2]  # paper x2 + the intact GPU file
    assert client.get("/api/bench/train").status_code == 422


# -- paper results API ---------------------------------------------------------------------

def test_results_api(client):
    body = client.get("/api/results").json()
    assert set(body["results"]) == set(paper_results().results)
    assert body["results"]["table2_wall_clock"]["rows"][3]["hours"] == 119.6
    one = client.get("/api/results/table7_pixels_vs_tokens").json()
    assert one["computed_rows"][0]["IN1K_ViT-L"] == pytest.approx(-0.2)
    csv = client.get("/api/results/table1f_mask_sampling", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[1] == "random,75,84.9,73.5,true"
    missing = client.get("/api/results/table99")
    assert missing.status_code == 404 and "table1a_decoder_depth" in missing.json()["message"]


# -- runs API ----------------------------------------------------------------------------

def test_runs_api(client):
    body = client.get("/api/runs").json()
    ids = [r["id"] for r in body["runs"]]
    assert set(ids) == {"demo-run", "older-run"}
    older = next(r for r in body["runs"] if r["id"] == "older-run")
    assert older["status"] == "finished" and older["summary"] == {"final_loss": 0.5}
    assert "path" not in older

    metrics = client.get("/api/runs/demo-run/metrics").json()
    assert [m["step"] for m in metrics["metrics"]] == list(range(1, 41))
    assert metrics["last_step"] == 40
    later = client.get("/api/runs/demo-run/metrics", params={"since_step": 37}).json()
    assert [m["step"] for m in later["metrics"]] == [38, 39, 40]
    none_new = client.get("/api/runs/demo-run/metrics", params={"since_step": 40}).json()
    assert none_new["metrics"] == [] and none_new["last_step"] == 40
    csv = client.get("/api/runs/demo-run/metrics", params={"format": "csv"}).text.splitlines()
    assert csv[0].startswith("step,epoch,lr,loss,images_per_s") and len(csv) == 41
    assert client.get("/api/runs/demo-run/metrics",
                      params={"since_step": "abc"}).status_code == 422


def test_snapshots_are_served_by_run_id_and_step_only(client):
    snaps = client.get("/api/runs/demo-run/snapshots").json()["snapshots"]
    assert [s["step"] for s in snaps] == [0, 20, 40]
    r = client.get(snaps[1]["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == snapshot_png(20)
    assert client.get("/api/runs/demo-run/snapshots/21").status_code == 404
    assert client.get("/api/runs/older-run/snapshots").json()["snapshots"] == []


@pytest.mark.parametrize("path", [
    "/api/runs/nope/metrics",
    "/api/runs/..%2Fruns/metrics",
    "/api/runs/%2E%2E/metrics",
    "/api/runs/demo-run%2F..%2Folder-run/metrics",
    "/api/runs/..%2F..%2Fetc/snapshots/0",
    "/api/runs/.hidden/snapshots",
    "/api/runs/nope/snapshots/0",
    "/api/runs/demo-run/snapshots/..%2F..%2Fconfig.json",
])
def test_unknown_or_crafted_run_paths_are_rejected(client, path):
    assert client.get(path).status_code in (404, 422)


def test_run_figures_endpoint(client):
    body = client.get("/api/runs/demo-run/figures").json()
    assert set(body["figures"]) == set(RUN_FIGURES)
    assert body["last_step"] == 40 and len(body["snapshots"]) == 3
    assert client.get("/api/analysis/figures", params={"run": "nope"}).status_code == 404


# -- bench and ablation files ----------------------------------------------------------------

def test_bench_endpoint_absent(empty_client):
    r = empty_client.get("/api/bench/train")
    assert r.status_code == 404 and "mae bench train" in r.json()["message"]
    assert empty_client.get("/api/runs").json()["runs"] == []


def test_bench_and_ablation_endpoints(client):
    assert client.get("/api/bench/train").json()["meta"]["cpu"] == "Test CPU x2"
    csv = client.get("/api/bench/train", params={"format": "csv"}).text.splitlines()
    assert "encoder" in csv[0] and len(csv) == 5

    index = client.get("/api/ablations").json()["factors"]
    assert index["mask_ratio"]["present"] and not index["strategy"]["present"]
    assert client.get("/api/ablations/mask_ratio").json()["rows"][2]["value"] == 0.75
    assert client.get("/api/ablations/strategy").status_code == 404
    assert client.get("/api/ablations/bogus").status_code == 404
    assert client.get("/api/ablations/mask_ratio",
                      params={"format": "csv"}).text.startswith("factor,value,recon_loss")


# -- performance: committed benchmark files -------------------------------------------------

def perf_card(html: str, name: str) -> str:
    match = re.search(rf'<div class="an-card an-perf[^"]*" id="bench-{name}".*?(?=<div class='
                      r'"an-card an-perf|</section>)', html, re.S)
    assert match, name
    return match.group(0)


def test_performance_section_shows_machine_of_each_file(client):
    html = client.get("/analysis").text
    assert 'href="#performance"' in html
    for name, machine in (("infer", "CPU: Test CPU x2"), ("infer_gpu", "GPU: Test GPU 80GB"),
                          ("peer", "CPU: Test CPU x2"), ("serve_latency", "device: cpu")):
        card = perf_card(html, name)
        assert "date: 2025-02-03 04:05 UTC" in card or name == "serve_latency", name
        assert machine in card, name
        assert "torch: 2.1" in card, name
        assert f'href="/api/bench/{name}"' in card
    # tables: % of the matmul ceiling, speed-up and max |diff|, latency and throughput
    assert "% of matmul ceiling" in perf_card(html, "infer") and "25.0%" in perf_card(html, "infer")
    peer = perf_card(html, "peer")
    assert "1.40×" in peer and "3.0e-06" in peer and "transformers 4.99" in peer
    serve = perf_card(html, "serve_latency")
    assert "p90 ms" in serve and "vs no batching" in serve and "2.90×" in serve
    assert "1,024 MB" in serve
    # the GPU training run is drawn beside the CPU one in Table 2's card, named by its GPU
    bench = embedded_figures(html)["bench"]
    assert "Test GPU 80GB" in bench["data"][3]["name"]
    assert bench["data"][3]["y"] == [3.0, 4.5]
    assert "GPU run:" in html and "GPU: Test GPU 80GB" in html


def test_older_serve_latency_file_without_throughput(monkeypatch, tmp_path):
    client, _, bench_dir = make_client(monkeypatch, tmp_path, with_ours=True)
    (bench_dir / "serve_latency.json").write_text(json.dumps(SERVE_LATENCY_OLD))
    html = client.get("/analysis").text
    specs = embedded_figures(html)
    assert [len(t["y"]) for t in specs["perf-latency"]["data"]] == [3]
    assert "perf-throughput" not in specs
    assert "no throughput sweep" in perf_card(html, "serve_latency")
    assert client.get("/api/bench/serve_latency").json()["throughput"] == []


@pytest.mark.parametrize("name, filename, command, fig_ids", [
    ("infer", "bench_infer.json", "mae bench infer", {"perf-infer"}),
    ("peer", "bench_peer.json", "mae bench peer", {"perf-peer"}),
    ("serve_latency", "serve_latency.json", "python -m mae_tools.serve_bench",
     {"perf-latency", "perf-throughput"}),
])
def test_malformed_performance_file_is_reported_not_drawn(monkeypatch, tmp_path, name, filename,
                                                          command, fig_ids):
    client, _, bench_dir = make_client(monkeypatch, tmp_path, with_ours=True)
    (bench_dir / filename).write_text('{"meta": {}, "rows": [{"model": 3}]}')
    html = client.get("/analysis").text
    card = perf_card(html, name)
    assert f'data-empty="bench-{name}"' in card
    assert f"does not match the `{command}` format" in card
    assert f"<code>{command}" in card
    specs = embedded_figures(html)
    assert not set(specs) & fig_ids  # nothing drawn from a broken file
    assert set(specs) >= set(PERF_FIGURES) - fig_ids
    assert client.get(f"/api/bench/{name}").status_code == 422
    (bench_dir / filename).write_text("{not json")
    assert "is not valid JSON" in perf_card(client.get("/analysis").text, name)


def test_bench_file_endpoints(client):
    body = client.get("/api/bench/infer_gpu").json()
    assert body["meta"]["gpu"] == "Test GPU 80GB" and len(body["rows"]) == 3
    csv = client.get("/api/bench/peer", params={"format": "csv"}).text.splitlines()
    assert len(csv) == 4 and "max_abs_diff" in csv[0] and "Test CPU x2" in csv[1]
    csv = client.get("/api/bench/serve_latency", params={"format": "csv"}).text.splitlines()
    assert len(csv) == 1 + 4 + 4
    assert client.get("/api/bench/train_gpu").json()["meta"]["gpu"] == "Test GPU 80GB"
    assert client.get("/api/bench/nope").status_code == 404


def test_bench_file_endpoint_absent(empty_client):
    r = empty_client.get("/api/bench/peer")
    assert r.status_code == 404 and "mae bench peer" in r.json()["message"]
