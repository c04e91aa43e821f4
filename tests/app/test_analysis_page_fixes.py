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


def test_empty_ablation_panel_gives_a_runnable_command(monkeypatch, tmp_path):
    monkeypatch.setenv("MAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MAE_BENCH_DIR", str(tmp_path / "bench"))
    settings = Settings(checkpoint_dir=tmp_path / "ck", data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        html = client.get("/analysis").text
    for factor in ("mask_ratio", "strategy", "decoder_depth", "norm_pix"):
        assert (f"mae ablate {factor} --data data/corpus/train --heldout data/corpus/heldout "
                f"--output {tmp_path / 'bench' / 'ablations'}/{factor}.json") in html
