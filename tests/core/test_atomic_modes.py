"""Files written atomically get the mode any new file gets (umask), whoever wrote the temp file."""

from __future__ import annotations

import os
import stat

import pytest

from mae_core import create_model, save_model
from mae_core.io_utils import write_atomic, write_bytes_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_safetensors_and_card_have_the_same_normal_mode(tmp_path, umask_022):
    model = create_model("mae_vit_tiny_patch16", img_size=32, embed_dim=32, depth=1, num_heads=2,
                         decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    path = save_model(model, tmp_path / "m.safetensors", {})
    assert mode(path) == mode(path.with_suffix(".json")) == 0o644


def test_a_writer_that_recreates_the_temp_file_still_gets_the_umask_mode(tmp_path, umask_022):
    def recreate(tmp):
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"x")
        os.close(fd)

    write_atomic(tmp_path / "a.bin", recreate)
    write_bytes_atomic(tmp_path / "b.bin", b"y")
    assert mode(tmp_path / "a.bin") == mode(tmp_path / "b.bin") == 0o644
