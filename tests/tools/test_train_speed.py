"""`mae bench train --mfu`: training throughput and MFU per preset (tiny sizes, CPU)."""

from __future__ import annotations

import json

import pytest

from mae_core.errors import InvalidParameterError
from mae_tools.bench import train_speed as T
from mae_tools.bench.common import mae_forward_flops
from mae_core.presets import get_preset


def test_datasheet_peak_by_gpu_name():
    assert T.datasheet_peak_tflops("NVIDIA H200") == 989.4
    assert T.datasheet_peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert T.datasheet_peak_tflops("Some Other GPU") is None


def test_mfu_rows_use_the_given_peak_and_the_model_flop_count():
    result = T.bench_train_mfu(["mae_vit_tiny_patch16"], img_size=32, batch_size=2, steps=1,
                               device="cpu", modes=["eager"], peak_tflops=2.0)
    (row,) = result["rows"]
    assert row["model"] == "mae_vit_tiny_patch16" and row["mode"] == "eager"
    flops = 3 * mae_forward_flops(get_preset("mae_vit_tiny_patch16", img_size=32), 0.75)
    assert row["gflops_per_image"] == pytest.approx(flops / 1e9)
    assert row["model_tflops_per_s"] == pytest.approx(flops * row["images_per_s"] / 1e12)
    assert row["mfu"] == pytest.approx(row["model_tflops_per_s"] / 2.0)
    assert result["meta"]["peak_source"] == "given" and result["meta"]["peak_tflops"] == 2.0


def test_unknown_mode_is_refused():
    with pytest.raises(InvalidParameterError, match="eager"):
        T.bench_train_mfu(["mae_vit_tiny_patch16"], modes=["jit"], device="cpu")


def test_cli_mfu_flag_writes_json(tmp_path, capsys):
    from mae_cli import main

    out = tmp_path / "mfu.json"
    assert main(["bench", "train", "--mfu", "mae_vit_tiny_patch16", "--mfu-modes", "eager",
                 "--img-size", "32", "--batch-size", "2", "--steps", "1", "--device", "cpu",
                 "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["mode"] for r in result["rows"]] == ["eager"]
    assert result["meta"]["peak_source"] == "measured matmul"  # no GPU: the run's own matmul rate
    assert "MFU" in capsys.readouterr().out
