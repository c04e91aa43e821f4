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
    assert set(specs) == set(PAGE_FIGURES + RUN_FIGURES)
    for fig_id in PAGE_FIGURES + RUN_FIGURES:
        assert f'data-figure="{fig_id}"' in html, fig_id
        assert f'id="{fig_id}"' in html, fig_id  # linkable anchor
    for table_id in HEAT_TABLES + ["table2"]:
        assert f'data-table="{table_id}"' in html
    for anchor in ("table1", "ablations", "downstream", "runs"):
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
    assert counts["bench"] == [2, 2, 2]                    # paper ViT-L, ViT-H, ours
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
    specs = embedded_figures(html)
    assert set(specs) == set(PAGE_FIGURES)
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
    assert len(embedded_figures(html)["bench"]["data"]) == 2
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
