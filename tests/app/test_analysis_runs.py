"""mae_core.runs: reading run folders while the trainer writes them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mae_core.runs import (
    find_run,
    is_valid_run_id,
    list_runs,
    list_snapshots,
    parse_metrics_line,
    read_json_result,
    read_metrics,
)


def make_run(root: Path, run_id: str, *, steps=(10, 20, 30), tail: str = "",
             config: dict | None = None, summary: dict | None = None,
             snapshots=(), age_s: float = 0.0) -> Path:
    run = root / run_id
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config or {"model": "mae_vit_tiny_patch16"}))
    lines = [json.dumps({"step": s, "epoch": s / 100, "lr": 1e-4 * s, "loss": 1.0 / s,
                         "images_per_s": 50.0 + s, "data_wait_frac": 0.1,
                         "elapsed_s": s * 0.5}) for s in steps]
    (run / "metrics.jsonl").write_text("\n".join(lines) + ("\n" if lines else "") + tail)
    if snapshots:
        (run / "snapshots").mkdir()
        for step in snapshots:
            (run / "snapshots" / f"step_{step:08d}.png").write_bytes(b"\x89PNG fake")
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    if age_s:
        old = time.time() - age_s
        for path in [run, *run.rglob("*")]:
            os.utime(path, (old, old))
    return run


def test_read_metrics_skips_bad_and_truncated_lines(tmp_path):
    run = make_run(tmp_path, "r1", steps=(1, 2), tail=(
        "not json\n"
        "[1, 2]\n"
        '{"epoch": 0.5}\n'                         # no step
        '{"step": "3"}\n'                          # step is not an int
        '{"step": -1, "loss": 1}\n'
        '{"step": 4, "loss": NaN, "lr": 0.001}\n'  # diverged: loss becomes None
        '{"step": 5, "loss": 0.2, "note": "x", "grad_norm": 1.5, "flag": true}\n'
        '{"step": 6, "loss": 0.1'                  # cut off while being written
    ))
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 4, 5]
    assert rows[2] == {"step": 4, "loss": None, "lr": 0.001}
    assert rows[3] == {"step": 5, "loss": 0.2, "grad_norm": 1.5}
    assert isinstance(rows[0]["step"], int) and rows[0]["images_per_s"] == 51.0


def test_read_metrics_since_step_and_missing_file(tmp_path):
    run = make_run(tmp_path, "r1", steps=(10, 20, 30, 40))
    assert [r["step"] for r in read_metrics(run, since_step=20)] == [30, 40]
    assert read_metrics(run, since_step=40) == []
    assert [r["step"] for r in read_metrics(run, since_step=-1)] == [10, 20, 30, 40]
    assert read_metrics(tmp_path / "nowhere") == []


def test_parse_metrics_line_accepts_integral_floats_for_step():
    assert parse_metrics_line('{"step": 7.0, "loss": 1}') == {"step": 7, "loss": 1.0}
    assert parse_metrics_line('{"step": 7.5}') is None
    assert parse_metrics_line("   ") is None


def test_list_snapshots_sorted_and_filtered(tmp_path):
    run = make_run(tmp_path, "r1", snapshots=(200, 0, 1000, 30))
    (run / "snapshots" / "step_abc.png").write_bytes(b"x")
    (run / "snapshots" / "notes.txt").write_text("x")
    (run / "snapshots" / "step_00000050.png.tmp").write_bytes(b"x")
    snaps = list_snapshots(run)
    assert [s.step for s in snaps] == [0, 30, 200, 1000]
    assert snaps[-1].path == run / "snapshots" / "step_00001000.png"
    assert list_snapshots(tmp_path / "none") == []


def test_list_runs_newest_first_with_status(tmp_path):
    make_run(tmp_path, "old-stopped", age_s=3600)
    make_run(tmp_path, "done", summary={"final_loss": 0.1}, age_s=600, snapshots=(5,))
    make_run(tmp_path, "live", steps=(1, 2, 3))
    (tmp_path / "not-a-run").mkdir()               # no config, no metrics
    (tmp_path / "stray.txt").write_text("x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "metrics.jsonl").write_text("")
    runs = list_runs(tmp_path)
    assert [r.id for r in runs] == ["live", "done", "old-stopped"]
    by_id = {r.id: r for r in runs}
    assert by_id["live"].status == "running"
    assert by_id["done"].status == "finished" and by_id["done"].summary == {"final_loss": 0.1}
    assert by_id["old-stopped"].status == "stopped"
    assert by_id["live"].last_metrics["step"] == 3
    assert by_id["done"].num_snapshots == 1
    assert by_id["live"].config == {"model": "mae_vit_tiny_patch16"}
    assert "path" not in by_id["live"].to_dict()
    assert list_runs(tmp_path / "missing") == []


def test_run_with_only_metrics_and_a_broken_config(tmp_path):
    run = make_run(tmp_path, "r1")
    (run / "config.json").write_text("{ half")
    (info,) = list_runs(tmp_path)
    assert info.config is None and info.last_metrics["step"] == 30


def test_find_run_only_matches_listed_ids(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "good")
    make_run(tmp_path, "outside")
    assert find_run(root, "good").path == root / "good"
    for bad in ("../outside", "..", ".", "good/../good", "/etc", "go od", "", "x" * 200,
                "nope"):
        assert find_run(root, bad) is None, bad
    assert not is_valid_run_id("..") and is_valid_run_id("2024-05-01_run.3")


def test_read_json_result(tmp_path):
    assert read_json_result(tmp_path / "none.json") is None
    (tmp_path / "a.json").write_text('{"rows": []}')
    assert read_json_result(tmp_path / "a.json") == {"rows": []}
    (tmp_path / "b.json").write_text("[1]")
    try:
        read_json_result(tmp_path / "b.json")
    except ValueError:
        pass
    else:  # pragma: no cover
        raise AssertionError("a non-object must raise")
