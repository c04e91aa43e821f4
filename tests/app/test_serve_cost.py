"""Served-model cost (issue 15, item 11): a cap on patches per image, and the cache policy shown."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app import create_app
from app.settings import Settings
from mae_tools.testing import png_bytes, reconstruct_form, synthetic_photo, write_checkpoint


def test_checkpoint_over_the_token_cap_is_refused_and_the_cache_policy_is_visible(tmp_path):
    write_checkpoint(tmp_path, "small")               # 64 px / 16: 16 patches
    write_checkpoint(tmp_path, "big", size=224)       # 224 px / 16: 196 patches
    settings = Settings(checkpoint_dir=tmp_path, default_model="small", data_dir=tmp_path / "data",
                        max_serve_tokens=100, model_cache_size=3)
    with TestClient(create_app(settings)) as client:
        refused = client.post("/reconstruct", **reconstruct_form(png_bytes(synthetic_photo()), model="big"))
        assert refused.status_code == 422, refused.text
        assert "196 patches" in refused.json()["message"] and "MAE_MAX_SERVE_TOKENS" in refused.json()["message"]
        assert client.post("/reconstruct", **reconstruct_form(png_bytes(synthetic_photo()),
                                                              model="small")).status_code == 200
        cache = client.get("/api/models").json()["cache"]
        assert cache["size"] == 3 and cache["max_tokens_per_image"] == 100
        assert "small" in cache["loaded"] and "big" not in cache["loaded"]
        assert "least recently used" in cache["policy"]
