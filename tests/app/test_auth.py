"""Access control (issue 15, item 7): token, cookie, scope, Origin and Host, and the headers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app import create_app
from app.settings import Settings
from mae_tools.testing import write_checkpoint

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("auth")
    write_checkpoint(folder, "tiny")
    return folder


def make_client(folder, base_url="http://127.0.0.1:8000", **settings) -> TestClient:
    settings.setdefault("allowed_hosts", [])  # the production default: loopback + bind host
    app = create_app(Settings(checkpoint_dir=folder, default_model="tiny", data_dir=folder / "data",
                              **settings))
    return TestClient(app, base_url=base_url)


def test_token_guards_every_route_but_the_probes_and_static_files(folder):
    with make_client(folder, auth_token=f"other,{TOKEN}") as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/ready").status_code in (200, 503)
        assert client.get("/static/css/app.css").status_code == 200
        refused = client.get("/api/models")
        assert refused.status_code == 401 and "Bearer" in refused.headers["www-authenticate"]
        assert refused.json()["error"] == "unauthorized"
        assert client.get("/api/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/models", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/api/models", headers={"Authorization": "Bearer other"}).status_code == 200
        page = client.get("/models", headers={"Accept": "text/html"})
        assert page.status_code == 401 and 'action="/login"' in page.text


def test_token_file_and_login_cookie(folder, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# lab tokens\n{TOKEN}\n")
    with make_client(folder, auth_token_file=tokens) as client:
        bad = client.post("/login", data={"token": "nope", "next": "/models"}, follow_redirects=False)
        assert bad.status_code == 401 and "not valid" in bad.text and "set-cookie" not in bad.headers
        good = client.post("/login", data={"token": TOKEN, "next": "//evil.example/x"}, follow_redirects=False)
        assert good.status_code == 303 and good.headers["location"] == "/"
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        assert client.get("/api/models").status_code == 200  # the cookie jar sends it
        client.post("/logout")
        client.cookies.clear()
        assert client.get("/api/models").status_code == 401


def test_write_scope_leaves_reading_open(folder):
    with make_client(folder, auth_token=TOKEN, auth_scope="write") as client:
        assert client.get("/api/models").status_code == 200
        assert client.post("/api/jobs/nope/cancel").status_code == 401
        authorised = client.post("/api/jobs/nope/cancel", headers={"Authorization": f"Bearer {TOKEN}"})
        assert authorised.status_code not in (401, 403)


def test_cross_site_writes_are_refused(folder):
    with make_client(folder) as client:
        evil = client.post("/api/jobs/nope/cancel", content=b"", headers={
            "Origin": "http://evil.example", "Content-Type": "text/plain"})
        assert evil.status_code == 403 and evil.json()["error"] == "cross_origin"
        assert client.post("/api/jobs/nope/cancel", headers={"Origin": "null"}).status_code == 403
        assert client.post("/api/jobs/nope/cancel", headers={
            "Referer": "http://evil.example/page"}).status_code == 403
        own = client.post("/api/jobs/nope/cancel", headers={"Origin": "http://127.0.0.1:8000"})
        assert own.status_code not in (400, 403)
        assert client.post("/api/jobs/nope/cancel").status_code not in (400, 403)  # curl: no Origin
        assert client.get("/api/models", headers={"Origin": "http://evil.example"}).status_code == 200


def test_host_allow_list(folder):
    with make_client(folder) as client:
        for host in ("127.0.0.1:8000", "localhost", "LOCALHOST:1234", "[::1]:8000"):
            assert client.get("/api/models", headers={"Host": host}).status_code == 200, host
        rebound = client.get("/api/models", headers={"Host": "attacker.example"})
        assert rebound.status_code == 400 and rebound.json()["error"] == "bad_host"
        assert client.get("/api/health", headers={"Host": "10.1.2.3:8000"}).status_code == 200
    with make_client(folder, base_url="http://lab.example", allowed_hosts=["lab.example"]) as client:
        assert client.get("/api/models").status_code == 200
        assert client.get("/api/models", headers={"Host": "localhost"}).status_code == 400
    with make_client(folder, host="10.0.0.5") as client:
        assert client.get("/api/models", headers={"Host": "10.0.0.5:8000"}).status_code == 200


def test_security_headers_on_every_answer(folder):
    with make_client(folder) as client:
        for resp in (client.get("/"), client.get("/api/models"), client.get("/api/nope"),
                     client.get("/api/models", headers={"Host": "evil.example"})):
            csp = resp.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe-eval" not in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
            assert resp.headers["x-content-type-options"] == "nosniff"
            assert resp.headers["referrer-policy"] == "same-origin"


def test_clients_see_names_never_host_paths(folder, tmp_path):
    from support.hostile_images import encode, picture

    root = tmp_path / "images"
    (root / "cats").mkdir(parents=True)
    for i in range(2):
        (root / "cats" / f"{i}.png").write_bytes(encode(picture(), "PNG"))
    with make_client(folder, data_roots=[root], host="0.0.0.0") as client:  # reachable from elsewhere
        for path in ("/api/datasets", "/train", "/api/models", "/api/checkpoints", "/api/ready"):
            resp = client.get(path)
            assert resp.status_code == 200, path
            for secret in (str(root), str(folder)):
                assert secret not in resp.text, (path, secret)
        assert "cats" in client.get("/api/datasets").text
        missing = client.post("/api/jobs", json={"dataset": "dogs", "epochs": 1, "batch_size": 4})
        assert str(root) not in missing.text
    with make_client(folder, data_roots=[root]) as client:  # loopback only: the local user's own paths
        assert str(root) in client.get("/api/datasets").text


def test_serving_beyond_loopback_without_a_token_is_shouted_at_start_up(tmp_path):
    from mae_cli.serve import open_network_warning

    token_file = tmp_path / "tokens"
    token_file.write_text("s3cret-token-from-a-file\n")
    warning = open_network_warning(Settings(host="0.0.0.0"))
    assert warning and "0.0.0.0 WITHOUT A TOKEN" in warning and "MAE_AUTH_TOKEN" in warning
    assert open_network_warning(Settings(host="0.0.0.0", auth_token="s3cret")) is None
    assert open_network_warning(Settings(host="0.0.0.0", auth_token_file=token_file)) is None
    for loopback in ("127.0.0.1", "localhost", "::1"):
        assert open_network_warning(Settings(host=loopback)) is None
