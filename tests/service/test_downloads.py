"""Background checkpoint downloads: progress, resume after a cut connection, checksum, cancel,
disk space, safe loading, conversion into the data folder's checkpoints."""

from __future__ import annotations

import hashlib

import pytest

from mae_core import list_checkpoints
from mae_core.checkpoint import catalog as C
from mae_core.checkpoint.catalog import CatalogEntry, load_catalog
from mae_service.downloads import CANCELLED, DONE, FAILED, DownloadManager, DownloadStateError
from support.file_server import file_host, malicious_pickle_bytes, official_pth_bytes


@pytest.fixture
def host():
    with file_host() as h:
        yield h


def _manager(tmp_path, host, **entry):
    data = official_pth_bytes(tmp_path)
    host.add("visualize/tiny.pth", data)
    fields = dict(name="tiny-official", path="visualize/tiny.pth", md5_prefix=hashlib.md5(data).hexdigest()[:6],
                  description="tiny test model", licence="test")
    fields.update(entry)
    return DownloadManager(tmp_path / "var", {"tiny-official": CatalogEntry(**fields)},
                           base_url=host.url), data


def test_a_download_is_converted_published_and_recorded_with_progress(tmp_path, host):
    manager, data = _manager(tmp_path, host)
    manager.start("tiny-official")
    state = manager.wait("tiny-official", timeout=60)
    assert state.state == DONE and state.bytes_done == state.bytes_total == len(data)
    [info] = list_checkpoints(tmp_path / "var" / "checkpoints")
    assert info.id == "tiny-official" and info.can_reconstruct and info.error is None
    assert info.card["licence"] == "test" and info.card["source"]["layout"] == "official"
    assert not (tmp_path / "var" / "downloads" / "tiny-official").exists()  # raw file removed
    with pytest.raises(DownloadStateError, match="already downloaded"):
        manager.start("tiny-official")


def test_a_cut_connection_fails_and_the_next_start_resumes_with_a_range_request(tmp_path, host):
    manager, data = _manager(tmp_path, host)
    host.cut_after = len(data) // 2
    manager.start("tiny-official")
    assert manager.wait("tiny-official", 60).state == FAILED
    partial = tmp_path / "var" / "downloads" / "tiny-official" / "tiny.pth.partial"
    assert 0 < partial.stat().st_size < len(data)
    have = partial.stat().st_size
    manager.start("tiny-official")
    assert manager.wait("tiny-official", 60).state == DONE
    assert host.ranges_seen[-1] == f"bytes={have}-"


def test_a_checksum_mismatch_publishes_nothing(tmp_path, host):
    manager, _ = _manager(tmp_path, host, md5_prefix="000000")
    manager.start("tiny-official")
    state = manager.wait("tiny-official", 60)
    assert state.state == FAILED and "md5" in state.error
    assert not list_checkpoints(tmp_path / "var" / "checkpoints")


def test_cancel_stops_the_transfer_and_keeps_the_partial_file_for_a_resume(tmp_path, host):
    manager, data = _manager(tmp_path, host)
    host.chunk, host.delay_per_chunk_s = 4096, 0.05
    manager.start("tiny-official")
    assert manager.cancel("tiny-official").state == CANCELLED
    partial = tmp_path / "var" / "downloads" / "tiny-official" / "tiny.pth.partial"
    assert partial.stat().st_size < len(data)
    host.delay_per_chunk_s = 0.0
    manager.start("tiny-official")
    assert manager.wait("tiny-official", 60).state == DONE


def test_not_enough_disk_space_is_refused_before_writing(tmp_path, host, monkeypatch):
    manager, _ = _manager(tmp_path, host)
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    manager.start("tiny-official")
    state = manager.wait("tiny-official", 60)
    assert state.state == FAILED and "disk space" in state.error
    assert not (tmp_path / "var" / "downloads" / "tiny-official" / "tiny.pth.partial").exists()



def test_a_file_that_needs_unpickling_code_is_refused_and_never_runs(tmp_path, host):
    host.add("evil.pth", malicious_pickle_bytes("/tmp/mae-download-pwned"))
    manager = DownloadManager(tmp_path / "var", {"evil": CatalogEntry("evil", "evil.pth", None, "")},
                              base_url=host.url)
    manager.start("evil")
    state = manager.wait("evil", 60)
    assert state.state == FAILED
    assert not list_checkpoints(tmp_path / "var" / "checkpoints")
    import os

    assert not os.path.exists("/tmp/mae-download-pwned")


def test_the_catalog_has_official_and_hub_entries_and_reads_an_extra_file(tmp_path, monkeypatch):
    extra = tmp_path / "catalog.json"
    extra.write_text('[{"id": "lab-model", "url": "http://127.0.0.1:1/m.safetensors", '
                     '"sha256": "ab", "size_bytes": 10, "license": "MIT", "description": "ours"}]')
    monkeypatch.setenv(C.CATALOG_ENV, str(extra))
    entries = load_catalog()
    assert entries["mae_visualize_vit_large"].licence.startswith("CC-BY-NC 4.0")
    assert not entries["mae_pretrain_vit_base"].has_decoder
    assert entries["hf-vit-mae-large"].source == C.HUGGINGFACE
    assert entries["lab-model"].licence == "MIT" and entries["lab-model"].url() == "http://127.0.0.1:1/m.safetensors"
    monkeypatch.setenv(C.MIRROR_ENV, "http://mirror.local/mae")
    assert entries["mae_visualize_vit_large"].url() == "http://mirror.local/mae/visualize/mae_visualize_vit_large.pth"
    extra.write_text('[{"id": "../x", "url": "u"}]')
    with pytest.raises(Exception, match="letters, digits"):
        load_catalog()
