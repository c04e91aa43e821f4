import json

from mae_tools.ablate import FACTORS, changes_for, run_ablation
from mae_cli import main
from support.train_helpers import make_images, tiny_config


def test_factor_values_map_to_config_changes(tmp_path):
    base = tiny_config(tmp_path, tmp_path / "run")
    assert changes_for("strategy", "block 50%", base) == {"mask_strategy": "block", "mask_ratio": 0.5}
    assert changes_for("mask_ratio", 0.9, base) == {"mask_ratio": 0.9}
    assert changes_for("decoder_depth", 2, base)["model_overrides"]["decoder_depth"] == 2
    assert changes_for("norm_pix", "false", base) == {"norm_pix_loss": False}
    assert set(FACTORS) == {"mask_ratio", "strategy", "decoder_depth", "norm_pix"}


def test_ablation_trains_each_value_and_scores_it(tmp_path):
    data = make_images(tmp_path / "train", count=16)
    heldout = make_images(tmp_path / "heldout", count=6, seed=1)
    base = tiny_config(data, tmp_path / "unused", epochs=2)
    result = run_ablation("decoder_depth", base, heldout, [1, 2], tmp_path / "runs", progress=False)
    assert [r["value"] for r in result["rows"]] == [1, 2]
    assert all(r["recon_loss"] > 0 for r in result["rows"])
    assert (tmp_path / "runs" / "ablate-decoder_depth-2" / "model.safetensors").exists()
    assert {"date", "cpu", "torch", "device"} <= set(result["meta"])  # like the benchmarks


def test_ablate_cli_writes_the_file_the_analysis_page_reads(tmp_path, monkeypatch):
    data = make_images(tmp_path / "train", count=16)
    heldout = make_images(tmp_path / "heldout", count=4, seed=1)
    cfg_out = tmp_path / "mask_ratio.json"
    code = main(["ablate", "mask_ratio", "--values", "0.5", "0.75", "--data", str(data),
                 "--heldout", str(heldout), "--img-size", "32", "--epochs", "1", "--batch-size", "8",
                 "--cache-px", "0", "--device", "cpu", "--runs-root", str(tmp_path / "runs"),
                 "--output", str(cfg_out)])
    assert code == 0
    result = json.loads(cfg_out.read_text())
    from app.figures import AblationResult

    parsed = AblationResult.model_validate(result)
    assert parsed.factor == "mask_ratio" and [r.value for r in parsed.rows] == [0.5, 0.75]
