import os

import numpy as np
import pytest
import torch
from PIL import Image

# Tests are CPU-only and small; keep torch from oversubscribing the 2-core CI machine.
torch.set_num_threads(min(2, os.cpu_count() or 1))

# Starlette's TestClient sends "Host: testserver"; the production default answers loopback names
# only (app.auth), so in-process tests add that one name (servers run as subprocesses inherit it).
os.environ.setdefault("MAE_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1,::1")



@pytest.fixture(autouse=True, scope="session")
def _isolated_data_dir(tmp_path_factory):
    """Apps built from default settings must not see a developer's local var/ data folder."""
    previous = os.environ.get("MAE_DATA_DIR")
    os.environ["MAE_DATA_DIR"] = str(tmp_path_factory.mktemp("mae-data-dir"))
    yield
    if previous is None:
        os.environ.pop("MAE_DATA_DIR", None)
    else:
        os.environ["MAE_DATA_DIR"] = previous


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium (see browser_helpers); a missing browser fails the test."""
    from support.browser_helpers import launch_chromium

    with launch_chromium() as b:
        yield b


@pytest.fixture
def tiny_model():
    """A tiny randomly initialised MAE on 64 px images (4x4 grid of 16 px patches)."""
    from mae_core import create_model

    torch.manual_seed(0)
    return create_model(
        "mae_vit_tiny_patch16", img_size=64, embed_dim=64, depth=2, num_heads=4,
        decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4,
    ).eval()


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model):
    from mae_core import save_model

    return save_model(tiny_model, tmp_path / "ckpts" / "tiny-test.safetensors",
                      {"training": {"note": "random init, test fixture"}})


@pytest.fixture
def photo():
    """A smooth synthetic 'photo' (gradients + a disc), RGB, 96x80."""
    yy, xx = np.mgrid[0:80, 0:96]
    r = (xx / 95 * 255)
    g = (yy / 79 * 255)
    b = np.where((xx - 48) ** 2 + (yy - 40) ** 2 < 400, 220, 40)
    return Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8), "RGB")


# ---------------------------------------------------------------------- job-store backends
@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the session (Debian's `postgresql` package); missing binaries
    fail the PostgreSQL-parametrised tests with the package to install."""
    from support.postgres import PostgresServer

    try:
        server = PostgresServer().start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    """Where a job store lives, once per backend: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "jobs" / "jobs.sqlite")
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def make_store(store_url):
    """``make_store(**kw)``: a JobStore on ``store_url`` (both backends behave the same)."""
    from mae_service.jobs import JobStore

    return lambda **kw: JobStore(store_url, **kw)
