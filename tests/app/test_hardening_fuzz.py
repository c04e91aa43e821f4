"""Schemathesis against the app's own OpenAPI schema: generated requests (valid and invalid by the
schema) to every operation get no server error, and every response matches the schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from app import Settings, create_app  # noqa: E402
from mae_tools.testing import write_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 20  # per operation and generation mode; bounded for a 2-core CI


@pytest.fixture(scope="module")
def served_app(tmp_path_factory):
    """The app on temporary folders only, so the outcome does not depend on which benchmark or
    run files happen to sit in the checkout (the committed default run is copied in)."""
    root = tmp_path_factory.mktemp("fuzz")
    write_checkpoint(root / "checkpoints", "mae-lab-default")
    shutil.copytree(REPO / "runs" / "mae-lab-default", root / "runs" / "mae-lab-default")
    (root / "bench").mkdir()
    app = create_app(Settings(checkpoint_dir=root / "checkpoints", data_dir=root / "data",
                              data_roots=[root / "images"], max_upload_bytes=256 * 1024))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MAE_RUNS_DIR", str(root / "runs"))
        env.setenv("MAE_BENCH_DIR", str(root / "bench"))
        with TestClient(app):  # runs the lifespan: the inference worker is up
            yield app


@pytest.fixture(scope="module")
def api_schema(served_app):
    return schemathesis.openapi.from_asgi("/openapi.json", served_app)


# The schema cannot say "the bytes must be a decodable image" or "the dataset must exist", so a
# schema-valid request may rightly get 400/413/415/422: the check that such requests are accepted
# is left out. Every other check runs: no 5xx, documented status codes, content types, headers,
# response bodies matching their schema, schema-invalid requests rejected.
EXCLUDED_CHECKS = [schemathesis.checks.positive_data_acceptance]


def fuzz(schema, mode) -> tuple[list[str], int]:
    """Run ``MAX_EXAMPLES`` generated cases against every operation; return the failures and how
    many operations had cases to run (a parameterless operation has no invalid input)."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable

    failures, fuzzed = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(excluded_checks=EXCLUDED_CHECKS)

        try:
            check()
            fuzzed += 1
        except Unsatisfiable:
            continue
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - collect every operation's failures
            failures.append(f"{operation.label}: {_summary(exc)}")
    return failures, fuzzed


def _summary(exc: BaseException) -> str:
    """The failure kinds and statuses from a Schemathesis failure group, without the noise."""
    lines = [line.strip() for line in str(exc).splitlines()]
    keep = [line for line in lines if line.startswith(("- ", "[", "Received", "Documented", "Expected"))]
    return " | ".join(keep)[:1200] or f"{type(exc).__name__}: {str(exc)[:600]}"


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_operation_conforms_to_its_schema(api_schema, mode):
    failures, fuzzed = fuzz(api_schema, schemathesis.GenerationMode(mode))
    assert not failures, "\n\n".join(failures)
    assert fuzzed >= (10 if mode == "positive" else 3), fuzzed


def test_the_fuzzer_reaches_every_operation(api_schema):
    labels = {r.ok().label for r in api_schema.get_all_operations()}
    assert "POST /reconstruct" in labels and "GET /api/models" in labels
    assert len(labels) >= 8, labels
