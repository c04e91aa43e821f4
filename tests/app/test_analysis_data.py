"""The paper-results data file: equal to the paper, complete, and validated by the loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.paper_results import (
    DATA_FILE,
    REQUIRED_RESULTS,
    PaperResultsError,
    load_paper_results,
    paper_results,
)

REPO = Path(__file__).resolve().parents[2]
REFERENCE_CANDIDATES = (
    REPO.parent / "shared" / "reference" / "paper_results.json",
    Path("/work/shared/reference/paper_results.json"),
)
REFERENCE = next((p for p in REFERENCE_CANDIDATES if p.is_file()), None)
needs_reference = pytest.mark.skipif(REFERENCE is None,
                                     reason="shared/reference/paper_results.json not readable")


def _reference() -> dict:
    assert REFERENCE is not None
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def test_data_file_loads_and_has_every_section():
    results = load_paper_results()
    for name in REQUIRED_RESULTS:
        assert name in results.results, name
    assert results.source.paper["arxiv_id"] == "2111.06377"


@needs_reference
def test_every_table_equals_the_shared_reference():
    ref = _reference()["tables"]
    results = paper_results()
    for name, entry in results.results.items():
        assert name in ref, f"{name} is not in the reference"
        r = ref[name]
        assert [c.key for c in entry.columns] == r["columns"], name
        ref_rows = [dict(zip(r["columns"], row)) for row in r["rows"]]
        if name == "table7_pixels_vs_tokens":
            # the paper's difference row is computed here, not stored
            printed = [row for row in ref_rows if row["target"].startswith("delta")]
            ref_rows = [row for row in ref_rows if not row["target"].startswith("delta")]
            computed = entry.computed_rows()
            assert len(printed) == len(computed) == 1
            for key, value in printed[0].items():
                if key != "target":
                    assert computed[0][key] == pytest.approx(value, abs=1e-9), key
        assert entry.rows == ref_rows, name
        assert entry.provenance == r["provenance"], name
        assert entry.title == r["title"] and entry.paper_ref == r.get("paper_ref"), name
        assert entry.notes == r.get("notes"), name
        assert entry.x_assignment_inferred == bool(r.get("x_assignment_inferred", False)), name


@needs_reference
def test_committed_file_is_what_the_converter_builds():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "build_paper_results.py"),
                           "--source", str(REFERENCE), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_table1f_row_by_row():
    rows = paper_results().get("table1f_mask_sampling").rows
    assert rows == [
        {"case": "random", "ratio_pct": 75, "ft": 84.9, "lin": 73.5, "is_default": True},
        {"case": "block", "ratio_pct": 50, "ft": 83.9, "lin": 72.3, "is_default": False},
        {"case": "block", "ratio_pct": 75, "ft": 82.8, "lin": 63.9, "is_default": False},
        {"case": "grid", "ratio_pct": 75, "ft": 84.0, "lin": 66.0, "is_default": False},
    ]


def test_table2_completely():
    entry = paper_results().get("table2_wall_clock")
    assert [c.key for c in entry.columns] == ["encoder", "dec_depth", "ft_acc", "hours",
                                              "speedup", "hours_estimated"]
    assert [list(r.values()) for r in entry.rows] == [
        ["ViT-L, w/ [M]", 8, 84.2, 42.4, None, False],
        ["ViT-L", 8, 84.9, 15.4, 2.8, False],
        ["ViT-L", 1, 84.8, 11.6, 3.7, False],
        ["ViT-H, w/ [M]", 8, None, 119.6, None, True],
        ["ViT-H", 8, 85.8, 34.5, 3.5, False],
        ["ViT-H", 1, 85.9, 29.3, 4.1, False],
    ]
    assert entry.footnotes == {"dagger": "This entry is estimated by training ten epochs."}


def test_spot_values_of_the_other_sections():
    r = paper_results()
    t1a = {row["blocks"]: (row["ft"], row["lin"]) for row in r.get("table1a_decoder_depth").rows}
    assert t1a == {1: (84.8, 65.5), 2: (84.9, 70.0), 4: (84.9, 71.9), 8: (84.9, 73.5),
                   12: (84.4, 73.3)}
    assert r.get("table1c_mask_token").values("flops_relative") == [3.3, 1.0]
    f5 = {row["masking_ratio_pct"]: (row["ft"], row["lin"])
          for row in r.get("figure5_masking_ratio").rows}
    assert f5[75] == (84.9, 73.5) and f5[10] == (83.2, 54.6) and f5[90] == (83.0, 66.1)
    assert r.get("figure7_training_schedule").values("epochs") == [100, 200, 400, 800, 1600]
    assert r.get("figure9_partial_finetuning").values("MoCo_v3") == [
        77.6, 79.9, 80.8, 81.6, 81.9, 83.2, 83.8, 84.1]
    assert r.get("baseline_vitl_scratch_vs_mae").values("top1") == [76.5, 82.5, 84.9]
    t13 = r.get("table13_robustness").rows[0]
    assert t13["dataset"] == "IN-Corruption (IN-C)" and t13["MAE_ViT-H"] == 33.8


def test_table7_delta_is_computed_not_stored():
    entry = paper_results().get("table7_pixels_vs_tokens")
    assert all(not str(row["target"]).lower().startswith(("delta", "δ")) for row in entry.rows)
    (delta,) = entry.computed_rows()
    assert [delta[c.key] for c in entry.columns[1:]] == pytest.approx(
        [0.0, -0.2, 0.0, 0.0, -0.1, 0.0, -0.2], abs=1e-9)


def test_figure5_points_carry_their_x_provenance():
    entry = paper_results().get("figure5_masking_ratio")
    assert entry.x_assignment_inferred
    status = dict(zip(entry.values("masking_ratio_pct"), entry.x_status["ft"]))
    assert {x for x, s in status.items() if s == "uncertain"} == {10, 20, 30, 90}
    assert status[75] == "anchored"
    lin = dict(zip(entry.values("masking_ratio_pct"), entry.x_status["lin"]))
    assert lin[10] == lin[75] == "anchored"
    assert any("10%, 20%, 30% and 90%" in c for c in entry.caveats)
    assert paper_results().get("figure9_partial_finetuning").x_status["MAE"][0] == "anchored"


# -- the loader rejects broken edits ---------------------------------------------------------

def _write(tmp_path: Path, mutate) -> Path:
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "paper_results.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["results"]["table2_wall_clock"]["rows"][0].__setitem__("hours", "42.4"),
     "not a number"),
    (lambda d: d["results"]["table1a_decoder_depth"]["rows"][1].pop("lin"), "has keys"),
    (lambda d: d["results"].pop("figure9_partial_finetuning"), "missing entries"),
    (lambda d: d["results"]["figure5_masking_ratio"]["x_status"]["ft"].pop(), "x_status"),
    (lambda d: d["results"]["table1f_mask_sampling"].__setitem__("provenance", ""), "provenance"),
    (lambda d: d["results"]["table7_pixels_vs_tokens"]["rows"].pop(2), "operand"),
    (lambda d: d["results"]["table3_imagenet_comparison"].__setitem__("surprise", 1), "surprise"),
    (lambda d: d.__setitem__("schema_version", 2), "schema_version"),
])
def test_loader_rejects_broken_files(tmp_path, mutate, message):
    with pytest.raises(PaperResultsError, match=message):
        load_paper_results(_write(tmp_path, mutate))


def test_loader_reports_a_missing_file(tmp_path):
    with pytest.raises(PaperResultsError, match="cannot read"):
        load_paper_results(tmp_path / "nope.json")


def test_csv_export_has_every_row_and_the_computed_delta():
    csv_text = paper_results().get("table7_pixels_vs_tokens").to_csv()
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("target,IN1K_ViT-B")
    assert len(lines) == 1 + 3 + 1
    assert lines[-1].startswith("Δ (token − norm pixel),0.0,-0.2")
    fig5 = paper_results().get("figure5_masking_ratio").to_csv().splitlines()
    assert fig5[0].endswith("ft_x_status,lin_x_status")
    assert fig5[1] == "10,83.2,54.6,false,true,uncertain,anchored"
