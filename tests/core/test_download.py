"""Checkpoint downloads (mae_core.checkpoint.download) from a local range-serving file host."""

import hashlib

import pytest

from mae_core.checkpoint import catalog
from mae_core.checkpoint.download import download, pull_official
from mae_core.errors import DownloadError
from support.file_server import file_host

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def server():
    """(base URL, payload, host): the official file layout on a local host with Range support."""
    with file_host() as host:
        host.add("visualize/mae_visualize_vit_base.pth", PAYLOAD)
        yield host.url, PAYLOAD, host


def test_download_resumes_partial_and_verifies_md5(tmp_path, server):
    base, payload, host = server
    dest = tmp_path / "out" / "file.pth"
    dest.parent.mkdir()
    (dest.parent / "file.pth.partial").write_bytes(payload[:300_000])
    md5 = hashlib.md5(payload).hexdigest()
    download(f"{base}/visualize/mae_visualize_vit_base.pth", dest, md5[:6], progress=False)
    assert dest.read_bytes() == payload
    assert host.ranges_seen[-1] == "bytes=300000-"
    assert not (dest.parent / "file.pth.partial").exists()


def test_md5_mismatch_is_refused_and_nothing_is_placed(tmp_path, server):
    base, _, _ = server
    dest = tmp_path / "file.pth"
    with pytest.raises(DownloadError, match="md5"):
        download(f"{base}/visualize/mae_visualize_vit_base.pth", dest, "000000", progress=False)
    assert not dest.exists() and not (tmp_path / "file.pth.partial").exists()


def test_pull_official_by_name_from_a_mirror(tmp_path, server, monkeypatch):
    base, payload, _ = server
    entry = catalog.OFFICIAL_CHECKPOINTS["mae_visualize_vit_base"]
    patched = catalog.OfficialCheckpoint(entry.name, entry.path,
                                         hashlib.md5(payload).hexdigest()[:6], entry.description)
    monkeypatch.setitem(catalog.OFFICIAL_CHECKPOINTS, entry.name, patched)
    path = pull_official("mae_visualize_vit_base", tmp_path, base_url=base, progress=False)
    assert path == tmp_path / "mae_visualize_vit_base.pth" and path.read_bytes() == payload


def test_missing_file_is_a_clear_error(tmp_path, server):
    base, _, _ = server
    with pytest.raises(DownloadError, match="404"):
        download(f"{base}/nope.pth", tmp_path / "x.pth", progress=False)
