"""Fixtures the browser tests share: the local catalog mirror and the server whose catalog lists
the mirror's model (tests/support/catalog_server.py). Module-scoped, so each test module has its
own mirror, server and downloads."""

from __future__ import annotations

import pytest

from support.catalog_server import catalog_server
from support.file_server import file_host


@pytest.fixture(scope="module")
def catalog_mirror():
    """A local HTTP mirror the catalog's files are downloaded from."""
    with file_host() as host:
        yield host


@pytest.fixture(scope="module")
def catalog_site(request, tmp_path_factory, catalog_mirror):
    """The base URL of a real server whose catalog lists ``tiny-official`` at ``catalog_mirror``."""
    folder = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with catalog_server(folder, catalog_mirror) as url:
        yield url
