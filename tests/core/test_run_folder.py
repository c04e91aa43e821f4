"""mae_core.runs.RunFolder: the one definition of a run folder — fenced writes, tolerant
truncation, metrics polls that read only the file's tail, downsampled curves for pages."""

from __future__ import annotations

import json

import pytest

from mae_core import runs
from mae_core.runs import RunFolder

BAD_LINES = b'[1, 2]\n{"step": "abc"}\n\xff\xfe not utf-8\n{"epoch": 1}\n'


def write_metrics(folder: RunFolder, steps, extra: bytes = b"", spike_at: int | None = None) -> None:
    folder.path.mkdir(parents=True, exist_ok=True)
    with open(folder.metrics_path, "wb") as f:
        for s in steps:
            loss = 100.0 if s == spike_at else 1.0 / s
            f.write(json.dumps({"step": s, "lr": 1e-3, "loss": loss}).encode() + b"\n")
        f.write(extra)


class Refused(Exception):
    pass


def test_every_write_goes_through_the_fence_and_a_refusal_writes_nothing(tmp_path):
    allowed = {"yes": True}

    def fence():
        if not allowed["yes"]:
            raise Refused

    folder = RunFolder(tmp_path / "run", fence=fence)
    folder.create()
    folder.write_config({"a": 1})
    folder.append_metrics({"step": 1, "loss": 0.5})
    before = {p: p.read_bytes() for p in folder.path.rglob("*") if p.is_file()}
    allowed["yes"] = False
    from PIL import Image

    writes = [
        lambda: folder.write_config({"a": 2}),
        lambda: folder.append_metrics({"step": 2, "loss": 0.4}),
        lambda: folder.truncate_metrics(0),
        lambda: folder.write_summary({"status": "stopped"}),
        lambda: folder.write_snapshot(2, Image.new("RGB", (4, 4))),
        lambda: folder.save_checkpoint(2, {"model": {}, "step": 2}, keep_last=2),
        lambda: folder.export_model(None, {}),
    ]
    for write in writes:
        with pytest.raises(Refused):
            write()
    after = {p: p.read_bytes() for p in folder.path.rglob("*") if p.is_file()}
    assert after == before


def test_truncate_keeps_usable_lines_up_to_the_step_with_the_pages_rule(tmp_path):
    folder = RunFolder(tmp_path / "run")
    write_metrics(folder, range(1, 11), extra=BAD_LINES + b'{"step": 11, "loss": 0.1')
    folder.truncate_metrics(6)
    assert [r["step"] for r in folder.read_metrics()] == [1, 2, 3, 4, 5, 6]
    assert folder.metrics_path.read_bytes().count(b"\n") == 6  # the bad lines are gone too


def test_a_poll_since_a_step_reads_only_the_tail(tmp_path):
    folder = RunFolder(tmp_path / "run")
    n = 300_000
    write_metrics(folder, range(1, n + 1))
    size = folder.metrics_path.stat().st_size
    rows = folder.read_metrics(since_step=n - 5)
    assert [r["step"] for r in rows] == list(range(n - 4, n + 1))
    assert folder.last_read_bytes <= 2 * runs.TAIL_BLOCK < size / 50, (folder.last_read_bytes, size)
    assert folder.read_metrics(since_step=n) == [] and folder.last_read_bytes <= runs.TAIL_BLOCK
    assert len(folder.read_metrics()) == n and folder.last_read_bytes == size  # a full read


def test_tail_reads_agree_with_a_full_read_across_block_edges(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "TAIL_BLOCK", 37)  # blocks far shorter than a line, and ragged
    folder = RunFolder(tmp_path / "run")
    write_metrics(folder, range(1, 60), extra=BAD_LINES + b'{"step": 60, "loss"')
    every = folder.read_metrics()
    for since in [-1, 0, 1, 2, 17, 30, 57, 58, 59, 60, 1000]:
        assert folder.read_metrics(since_step=since) == [r for r in every if r["step"] > since]
    assert RunFolder(tmp_path / "none").read_metrics(since_step=3) == []


def test_a_long_curve_is_downsampled_for_pages_and_says_so(tmp_path):
    folder = RunFolder(tmp_path / "run")
    n = 300_000
    write_metrics(folder, range(1, n + 1), spike_at=123_457)
    rows, note = folder.curve(max_points=2000)
    steps = [r["step"] for r in rows]
    assert len(rows) <= 2000 and steps == sorted(steps)
    assert steps[0] == 1 and steps[-1] == n  # the ends survive
    assert 123_457 in steps  # so does a spike (the bucket's max)
    assert note["rows"] == n and note["kept"] == len(rows) and "max loss" in note["rule"]
    assert RunFolder(tmp_path / "run").poll_metrics(max_points=0)[1] is None


def test_a_short_curve_is_whole(tmp_path):
    folder = RunFolder(tmp_path / "run")
    write_metrics(folder, range(1, 101), extra=BAD_LINES)
    rows, note = folder.poll_metrics()
    assert note is None and [r["step"] for r in rows] == list(range(1, 101))
    assert RunFolder(tmp_path / "empty").curve() == ([], None)
