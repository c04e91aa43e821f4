"""One definition per benchmark file: the writers' helper refuses what the page's reader refuses."""

from __future__ import annotations

import pytest

from app.figures import BenchInfer, BenchTrain, ServeLatency
from mae_core.results import bench_problems, bench_result, write_result

ROW = {"model": "mae_vit_tiny_patch16", "batch_size": 1, "ms_per_batch": 4.0, "images_per_s": 250.0}


def test_writer_and_reader_share_the_format(tmp_path):
    result = bench_result("infer", {"date": "2026-01-01"}, [ROW])
    assert BenchInfer.model_validate(result).rows[0].batch_size == 1
    bad = {**ROW, "batch_size": 0}
    with pytest.raises(ValueError, match=r"rows\[0\]\.batch_size must be >= 1"):
        bench_result("infer", {}, [bad])
    with pytest.raises(ValueError, match=r"batch_size must be >= 1"):
        BenchInfer.model_validate({"meta": {}, "rows": [bad]})
    with pytest.raises(ValueError, match="step_s must be > 0"):
        BenchTrain.model_validate({"rows": [{"encoder": "mask-tokens", "decoder_depth": 8,
                                              "step_s": 0, "images_per_s": 1.0}]})
    with pytest.raises(ValueError, match="not a valid python -m mae_tools.serve_bench file"):
        write_result(tmp_path / "s.json", {"latency": {"bare": {"p50_ms": -1}}}, "serve_latency")
    assert not (tmp_path / "s.json").exists()
    assert bench_problems("serve_latency", {"latency": {"bare": {"p50_ms": 1.0}},
                                            "server_peak_rss_mb": -3}) == [
        "server_peak_rss_mb must be >= 0, got -3"]
    with pytest.raises(ValueError, match="server_peak_rss_mb"):
        ServeLatency.model_validate({"latency": {"bare": {"p50_ms": 1.0}}, "server_peak_rss_mb": -3})
