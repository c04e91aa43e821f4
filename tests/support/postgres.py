"""The tests' PostgreSQL server: mae_tools.postgres_server (shared with the job-store benchmark)."""

from mae_tools.postgres_server import PACKAGE_HINT, PostgresServer, find_bin_dir

__all__ = ["PACKAGE_HINT", "PostgresServer", "find_bin_dir"]
