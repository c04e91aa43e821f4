"""/docs and /redoc reference only this server's own files (the browser test renders them)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app import Settings, create_app
from app.main import REDOC_CDN_LOGO


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with TestClient(create_app(Settings(checkpoint_dir=tmp_path_factory.mktemp("ckpts")))) as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client, page):
    html = client.get(page).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html)
    assert urls and all(u.startswith("/") for u in urls), urls
    assert "fonts.googleapis" not in html and "cdn." not in html
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_served_redoc_bundle_has_no_cdn_logo(client):
    body = client.get("/vendor/docs/redoc.standalone.js").content
    assert len(body) > 500_000 and REDOC_CDN_LOGO not in body
