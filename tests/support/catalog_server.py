"""A real server whose checkpoint catalog lists one tiny official-layout model served by a local
HTTP mirror (MAE_CHECKPOINT_CATALOG / MAE_CHECKPOINT_MIRROR): what the browser tests download."""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mae_tools.testing import ServerProcess, write_checkpoint
from support.file_server import official_pth_bytes

CATALOG_ID = "tiny-official"


@contextmanager
def catalog_server(tmp: Path, mirror) -> Iterator[str]:
    """Start the server (embedded-style default ``mae-lab-default`` plus a catalog entry
    ``tiny-official`` at ``mirror``); yields its base URL."""
    data = official_pth_bytes(tmp, seed=7)  # other weights than the default (seed 0, same shape)
    mirror.add("visualize/tiny.pth", data)
    catalog = tmp / "catalog.json"
    catalog.write_text(json.dumps([{"id": CATALOG_ID, "url": "visualize/tiny.pth",
                                    "md5_prefix": hashlib.md5(data).hexdigest()[:8],
                                    "description": "tiny MAE, official layout", "licence": "test"}]))
    write_checkpoint(tmp / "checkpoints", "mae-lab-default")
    env = {"MAE_CHECKPOINT_CATALOG": str(catalog), "MAE_CHECKPOINT_MIRROR": mirror.url,
           "MAE_DATA_DIR": str(tmp / "data")}
    with ServerProcess(tmp / "checkpoints", "mae-lab-default", env=env, args=["--device", "cpu"]) as proc:
        proc.wait_ready()
        yield proc.url


def download_from_catalog(page, server: str, mirror, model_id: str = CATALOG_ID) -> None:
    """On /models, download ``model_id`` from the mirror, checking the progress bar is shown
    (bytes "x of y") and survives a reload, until the card says the file is present."""
    mirror.chunk, mirror.delay_per_chunk_s = 2048, 0.03  # slow enough to watch the bar move
    page.goto(server + "/models")
    card = page.locator(f'.model-card[data-id="{model_id}"]')
    assert card.get_attribute("data-state") == "available"
    card.get_by_role("button", name="Download").click()
    progress = page.locator(f'.model-card[data-id="{model_id}"] .download-progress')
    progress.wait_for(timeout=20_000)
    assert " of " in progress.inner_text()
    page.reload()  # the server keeps the state: the bar is still (or already) there
    page.wait_for_selector(f'.model-card[data-id="{model_id}"][data-state="present"]', timeout=60_000)
