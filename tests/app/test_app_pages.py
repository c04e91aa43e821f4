"""HTML pages, static assets, settings and the ``mae serve`` command (no browser)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import Settings, create_app
from mae_tools.testing import write_checkpoint
from mae_cli import build_parser


@pytest.fixture
def client(tmp_path: Path):
    folder = tmp_path / "checkpoints"
    write_checkpoint(folder, "mae-lab-default", card={"data": {"description": "wallpapers"},
                                                      "training": {"epochs": 3}})
    with TestClient(create_app(Settings(checkpoint_dir=folder))) as c:
        yield c


def test_reconstruct_page_has_labelled_controls_and_figure_views(client):
    resp = client.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    html = resp.text
    for control in ("file-input", "ratio", "seed", "model-select", "resize", "show-grid"):
        assert f'for="{control}"' in html, control  # every control has a <label>
    for strategy in ("random", "block", "grid"):
        assert f'id="strategy-{strategy}"' in html and f'for="strategy-{strategy}"' in html
    assert 'min="5" max="95"' in html  # the ratio slider's range
    for view in ("single", "sweep", "strategies", "custom"):
        assert f'id="view-{view}"' in html and f'aria-controls="view-{view}"' in html
    assert 'id="mask-editor"' in html and 'id="download"' in html and 'id="new-mask"' in html
    assert "mae-lab-default (default)" in html


def test_pages_make_no_request_outside_the_server(client):
    html = client.get("/").text
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(u.startswith(("/", "#", "data:")) for u in urls), urls
    for url in urls:
        if url.startswith("/static/") or url.startswith("/vendor/"):
            assert client.get(url).status_code == 200, url
    js = client.get("/static/js/reconstruct.js").text
    assert "http://" not in js and "https://" not in js


def test_plotly_is_served_from_the_installed_package(client):
    resp = client.get("/vendor/plotly.min.js")
    assert resp.status_code == 200 and "javascript" in resp.headers["content-type"]
    assert len(resp.content) > 1_000_000 and b"plotly" in resp.content[:2000].lower()


def test_nav_lists_only_pages_that_exist(client):
    html = client.get("/").text
    nav = html[html.index("<nav"):html.index("</nav>")]
    assert 'href="/" aria-current="page"' in nav
    for page in ("/analysis", "/train"):
        exists = client.get(page).status_code == 200
        assert (f'href="{page}"' in nav) == exists, page


def test_base_template_blocks_for_other_pages():
    text = (Path(__file__).resolve().parents[2] / "templates" / "base.html").read_text()
    for block in ("title", "head", "content", "scripts"):
        assert f"{{% block {block} %}}" in text


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MAE_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setenv("MAE_DEFAULT_MODEL", "mine")
    monkeypatch.setenv("MAE_QUEUE_SIZE", "7")
    monkeypatch.setenv("MAE_MAX_UPLOAD_BYTES", "12345")
    monkeypatch.setenv("MAE_PORT", "9001")
    s = Settings()
    assert (s.checkpoint_dir, s.default_model, s.queue_size, s.max_upload_bytes, s.port) == (
        tmp_path, "mine", 7, 12345, 9001)


def test_mae_serve_flags_override_the_environment(monkeypatch, tmp_path):
    from mae_cli.serve import settings_from_args

    monkeypatch.setenv("MAE_PORT", "9001")
    monkeypatch.setenv("MAE_CHECKPOINT_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("MAE_QUEUE_SIZE", "5")
    args = build_parser().parse_args(["serve", "--port", "9100", "--host", "0.0.0.0",
                                      "--default-model", "x", "--checkpoint-dir", str(tmp_path / "flag")])
    s = settings_from_args(args)
    assert (s.port, s.host, s.default_model, s.checkpoint_dir) == (9100, "0.0.0.0", "x", tmp_path / "flag")
    assert s.queue_size == 5  # not a flag: the environment still applies
    s = settings_from_args(build_parser().parse_args(["serve"]))
    assert s.port == 9001 and s.checkpoint_dir == tmp_path / "env"


def test_checkpoint_folder_defaults_to_the_data_folder(monkeypatch, tmp_path):
    """Not the source checkout: the data folder's checkpoints/ (issue 13); the embedded default
    is found in the package whatever the checkpoint folder is."""
    monkeypatch.delenv("MAE_CHECKPOINT_DIR", raising=False)
    monkeypatch.setenv("MAE_DATA_DIR", str(tmp_path / "data"))
    assert Settings().checkpoint_dir == tmp_path / "data" / "checkpoints"
    monkeypatch.delenv("MAE_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    assert Settings().checkpoint_dir == tmp_path / "var" / "checkpoints"


def test_bundled_samples_are_small_photos_with_licences(client):
    from PIL import Image

    samples_dir = Path(__file__).resolve().parents[2] / "static" / "samples"
    entries = json.loads((samples_dir / "samples.json").read_text())
    licences = (samples_dir / "LICENSES.md").read_text()
    assert 4 <= len(entries) <= 6
    html = client.get("/").text
    for entry in entries:
        path = samples_dir / entry["file"]
        with Image.open(path) as im:
            assert im.format == "JPEG" and min(im.size) >= 224 and max(im.size) <= 480
        assert path.stat().st_size < 80_000
        row = next(line for line in licences.splitlines() if line.startswith(f"| `{entry['file']}`"))
        package, _original, licence = [c.strip() for c in row.split("|")[2:5]]
        assert package and licence, row
        assert f'data-src="/static/samples/{entry["file"]}"' in html
    shown = client.get("/samples/licenses")
    assert 'href="/samples/licenses"' in html and shown.headers["content-type"].startswith("text/plain")
    assert shown.text == licences
