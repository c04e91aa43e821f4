"""Issue 15 item 6: no JSON request body with NaN/Infinity reaches any route (one app-wide check)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app import Settings, create_app
from mae_tools.testing import write_checkpoint

BODIES = ['{"dataset": "x", "epochs": NaN}', '{"a": [1, Infinity]}', '{"a": {"b": -Infinity}}']


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("strict")
    write_checkpoint(tmp / "checkpoints", "mae-lab-default")
    with TestClient(create_app(Settings(checkpoint_dir=tmp / "checkpoints", data_dir=tmp / "data",
                                        data_roots=[tmp]))) as c:
        yield c


def state_changing_operations(app) -> list[tuple[str, str]]:
    """(method, path with parameters filled) of every documented operation that may take a body."""
    return [(method.upper(), re.sub(r"\{[^}]+\}", "x", path))
            for path, ops in app.openapi()["paths"].items()
            for method in ops if method in ("post", "put", "patch", "delete")]


def test_every_body_route_refuses_non_finite_numbers(client):
    routes = state_changing_operations(client.app)
    paths = {p for _, p in routes}
    # the routers the issue names are among them: jobs, features, checkpoints, reconstruct
    assert {"/api/jobs", "/api/features", "/api/checkpoints", "/reconstruct"} <= paths
    for method, path in routes:
        for body in BODIES:
            resp = client.request(method, path, content=body,
                                  headers={"content-type": "application/json"})
            assert resp.status_code == 422, (method, path, resp.text)
            assert "JSON numbers must be finite" in resp.text, (method, path)


def test_finite_json_and_other_bodies_pass_through(client):
    resp = client.post("/api/jobs", content='{"dataset": "nope", "epochs": 1}',
                       headers={"content-type": "application/json"})
    assert resp.status_code == 422 and "finite" not in resp.text  # the route's own answer
    # a non-JSON body is the route's business, even when it spells NaN
    resp = client.post("/api/jobs", content="NaN", headers={"content-type": "text/plain"})
    assert "JSON numbers must be finite" not in resp.text
