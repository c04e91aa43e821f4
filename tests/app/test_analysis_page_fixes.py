"""Analysis page fixes: bar labels that do not run together, a runnable `mae ablate` command."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app import Settings, create_app
from app.figures import table1_figure
from app.figures.paper import TABLE1_LABELS
from app.paper_results import paper_results


def test_grouped_bar_labels_are_turned_so_neighbours_do_not_overlap():
    for fig_id in TABLE1_LABELS:
        spec = table1_figure(paper_results(), fig_id)
        bars = [t for t in spec["data"] if t.get("offsetgroup") in ("ft", "lin")]
        assert len(bars) == 2 and all(t["textangle"] == -90 for t in bars), fig_id
        top = max(max(t["y"]) for t in bars)
        assert spec["layout"]["yaxis"]["range"][1] > top + 1  # room above for the turned labels


def test_table2_benchmark_bar_labels_are_turned_too():
    from app.figures import BenchTrain, bench_figure

    rows = [{"encoder": e, "decoder_depth": d, "step_s": s, "images_per_s": 1.0}
            for e, d, s in (("mask-tokens", 8, 0.3), ("visible-only", 8, 0.1),
                            ("mask-tokens", 1, 0.2), ("visible-only", 1, 0.05))]
    bench = BenchTrain.model_validate({"meta": {}, "rows": rows})
    spec = bench_figure(paper_results(), bench, bench)  # paper ViT-L, ViT-H, ours CPU, ours GPU
    bars = [t for t in spec["data"] if t["type"] == "bar"]
    assert len(bars) == 4 and all(t["textangle"] == -90 for t in bars)
    top = max(max(t["y"]) for t in bars)
    assert spec["layout"]["yaxis"]["range"][1] >= top * 1.35


def test_empty_ablation_panel_gives_a_runnable_command(monkeypatch, tmp_path):
    monkeypatch.setenv("MAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MAE_BENCH_DIR", str(tmp_path / "bench"))
    settings = Settings(checkpoint_dir=tmp_path / "ck", data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        html = client.get("/analysis").text
    for factor in ("mask_ratio", "strategy", "decoder_depth", "norm_pix"):
        assert (f"mae ablate {factor} --data data/corpus/train --heldout data/corpus/heldout "
                f"--output {tmp_path / 'bench' / 'ablations'}/{factor}.json") in html
