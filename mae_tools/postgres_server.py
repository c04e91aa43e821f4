"""A throwaway PostgreSQL server (tests, the job-store benchmark), from Debian's `postgresql` package.

``PostgresServer`` runs ``initdb`` into a temporary folder and starts ``postgres`` on a free
port, listening on a unix socket in that folder only; ``new_database()`` gives each test its own
database. As root, the server runs as the ``postgres`` OS user (PostgreSQL refuses root).
Missing binaries are an error naming the package, never a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mae_tools.testing import free_port

PACKAGE_HINT = ("PostgreSQL server binaries (initdb, pg_ctl) not found under "
                "/usr/lib/postgresql/*/bin: install Debian's `postgresql` package "
                "(apt-get install -y postgresql; .ci/run and scripts/test.sh do it as root)")


def find_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        raise RuntimeError(PACKAGE_HINT)
    return Path(found[-1]).parent


class PostgresServer:
    """``durable=False`` (tests) turns fsync off; the benchmark keeps it on, as in production."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.bin = find_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="mae-pg-"))
        self.data, self.socket_dir = self.root / "data", self.root
        self.port = free_port()
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._databases = 0

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def start(self) -> "PostgresServer":
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
                  "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses='' -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                  "-o", options, "-w", "-t", "60", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}&port={self.port}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
