"""The analysis page and its REST endpoints, through the real app factory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.paper_results import paper_results

from support.analysis_data import (  # noqa: F401
    PAGE_FIGURES, PERF_FIGURES, RUN_FIGURES, HEAT_TABLES, BENCH, ABLATION_MASK_RATIO, MACHINE, BENCH_TRAIN_GPU, BENCH_INFER, BENCH_INFER_GPU, BENCH_PEER, SERVE_LATENCY, SERVE_LATENCY_OLD, PERF_FILES, infer_row, latency, snapshot_png, write_run, write_ours,
)


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
    assert "<code>mae ablate --help</code>" in html  # beside each panel's runnable command
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
