"""Issue 15 item 5, in-process: a request holds a handling slot (MAE_MAX_IN_FLIGHT) only once its
body is complete, a body completing while every slot is taken gets 503 (never FastAPI's 400 or a
500), and a drain waits for admitted requests still receiving their body."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from app import Settings, create_app
from app.admission import Admission, has_body
from mae_tools.testing import call_asgi, png_bytes, synthetic_photo, write_checkpoint

MULTIPART = "multipart/form-data; boundary=b"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slots") / "checkpoints"
    write_checkpoint(folder, "tiny")
    return folder


def multipart_body() -> bytes:
    return (b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + png_bytes(synthetic_photo(32, 32)) + b"\r\n--b--\r\n")


def two_piece_post(app: Any, path: str, content_type: str, body: bytes,
                   between: Callable[[], None]) -> dict[str, Any]:
    """One raw ASGI POST whose body arrives in two pieces; ``between()`` runs after the app has
    read the first and before it gets the last. Returns status, headers and the parsed body."""
    headers = {"host": "127.0.0.1", "content-type": content_type, "content-length": str(len(body))}
    out = call_asgi(app, "POST", path, headers, [body[:10], body[10:]], before_last=between)
    out["json"] = json.loads(out["body"]) if out["body"] else None
    return out


@pytest.mark.parametrize("path, content_type, body", [
    ("/reconstruct", MULTIPART, multipart_body()),   # multipart, read by Starlette's form parser
    ("/api/jobs", "application/json", json.dumps({"dataset": "tiny", "epochs": 1}).encode()),  # StrictJSON's buffer
])
def test_a_body_completing_with_every_slot_taken_gets_503_not_400_or_500(folder, path, content_type, body):
    app = create_app(Settings(checkpoint_dir=folder, max_in_flight=1, max_receiving=4))
    admission: Admission = app.state.admission
    seen = {}

    def take_the_last_slot() -> None:
        seen["while_receiving"] = (admission.receiving, admission.in_flight)
        assert admission.try_enter(with_body=False) is None  # another request is handled now

    out = two_piece_post(app, path, content_type, body, take_the_last_slot)
    assert seen["while_receiving"] == (1, 0), "a request still receiving its body held a handling slot"
    assert out["status"] == 503, out
    assert out["json"]["error"] == "overloaded" and "MAE_MAX_IN_FLIGHT" in out["json"]["message"]
    assert int(out["headers"]["retry-after"]) >= 1 and int(out["headers"]["retry-after-ms"]) >= 1
    assert out["headers"]["connection"] == "close"
    assert (admission.receiving, admission.in_flight) == (0, 1)  # only the slot the test took
    admission.leave(handling=True)
    assert admission.active == 0


def test_a_body_admitted_before_a_drain_is_still_handled_and_the_drain_waits_for_it(folder):
    app = create_app(Settings(checkpoint_dir=folder, max_in_flight=1, max_receiving=4))
    admission: Admission = app.state.admission
    seen = {}

    def sigterm() -> None:
        admission.start_draining()
        seen["active"] = admission.active  # what app.server's drain waits for

    # a JSON list where the job's fields belong: the route itself answers 422
    out = two_piece_post(app, "/api/jobs", "application/json", b'["not", "a", "job", "object"]', sigterm)
    assert seen["active"] == 1
    assert out["status"] == 422, out  # handled, not refused with shutting_down
    assert out["headers"]["connection"] == "close"  # answered while draining
    assert admission.active == 0


def test_the_receiving_cap_and_the_handling_cap_are_separate():
    admission = Admission(limit=1, max_receiving=2)
    assert admission.try_enter(with_body=True) is None
    assert admission.try_enter(with_body=True) is None
    refused = admission.try_enter(with_body=True)
    assert refused is not None and "MAE_MAX_RECEIVING" in str(refused)
    assert admission.try_enter(with_body=False) is None  # two idle uploads leave the slot free
    full = admission.try_enter(with_body=False)
    assert full is not None and "MAE_MAX_IN_FLIGHT" in str(full)
    assert admission.body_complete() is not None  # no slot for a body that completes now
    admission.leave(handling=True)
    assert admission.body_complete() is None
    assert (admission.receiving, admission.in_flight, admission.active) == (1, 1, 2)


@pytest.mark.parametrize("headers, expected", [
    ([], False), ([(b"content-length", b"0")], False), ([(b"content-length", b"12")], True),
    ([(b"transfer-encoding", b"chunked")], True),
])
def test_has_body(headers, expected):
    assert has_body({"type": "http", "headers": headers}) is expected
