import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mae_core.checkpoint import catalog
from mae_core.checkpoint.download import download, pull_official
from mae_core.errors import DownloadError


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range support, like the official file host."""

    requests_seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests_seen.append(self.headers.get("Range"))
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()
        except OSError:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    (root / "visualize").mkdir(parents=True)
    payload = bytes(range(256)) * 4096  # 1 MiB
    (root / "visualize" / "mae_visualize_vit_base.pth").write_bytes(payload)
    RangeHandler.requests_seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", payload
    httpd.shutdown()


def test_download_resumes_partial_and_verifies_md5(tmp_path, server):
    base, payload = server
    dest = tmp_path / "out" / "file.pth"
    dest.parent.mkdir()
    (dest.parent / "file.pth.partial").write_bytes(payload[:300_000])
    md5 = hashlib.md5(payload).hexdigest()
    download(f"{base}/visualize/mae_visualize_vit_base.pth", dest, md5[:6], progress=False)
    assert dest.read_bytes() == payload
    assert RangeHandler.requests_seen[-1] == "bytes=300000-"
    assert not (dest.parent / "file.pth.partial").exists()


def test_md5_mismatch_is_refused_and_nothing_is_placed(tmp_path, server):
    base, _ = server
    dest = tmp_path / "file.pth"
    with pytest.raises(DownloadError, match="md5"):
        download(f"{base}/visualize/mae_visualize_vit_base.pth", dest, "000000", progress=False)
    assert not dest.exists() and not (tmp_path / "file.pth.partial").exists()


def test_pull_official_by_name_from_a_mirror(tmp_path, server, monkeypatch):
    base, payload = server
    entry = catalog.OFFICIAL_CHECKPOINTS["mae_visualize_vit_base"]
    patched = catalog.OfficialCheckpoint(entry.name, entry.path,
                                         hashlib.md5(payload).hexdigest()[:6], entry.description)
    monkeypatch.setitem(catalog.OFFICIAL_CHECKPOINTS, entry.name, patched)
    path = pull_official("mae_visualize_vit_base", tmp_path, base_url=base, progress=False)
    assert path == tmp_path / "mae_visualize_vit_base.pth" and path.read_bytes() == payload


def test_missing_file_is_a_clear_error(tmp_path, server):
    base, _ = server
    with pytest.raises(DownloadError, match="404"):
        download(f"{base}/nope.pth", tmp_path / "x.pth", progress=False)
