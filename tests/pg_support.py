"""A throwaway PostgreSQL server for the tests, from the machine's own ``initdb`` and
``pg_ctl`` (Debian's ``postgresql`` package), on a free loopback port.

Tests run as root here, and PostgreSQL refuses to run as root: the cluster is then created
and run as the ``postgres`` user (``runuser -u postgres``), in a directory that user owns.
The server keeps ``fsync`` and ``synchronous_commit`` on, as a real deployment does, so a
test of durability tests the real thing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from conftest import free_port, require_tool

# Debian installs the server binaries outside PATH; these are where they are looked for too.
_SERVER_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for directory in _SERVER_DIRS:
        if (directory / name).is_file():
            return str(directory / name)
    return require_tool(name, "postgresql")


@dataclass
class PostgresServer:
    """``root`` must be a directory the postgres user can reach: pytest's own temporary
    directories (mode 0700, owned by root) are not, so by default a fresh one is made in
    the system's temporary directory and removed by ``remove``."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kinko-pg-")))
    port: int = 0
    database: str = "kinko"

    @property
    def data(self) -> Path:
        return self.root / "pgdata"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Kinko takes (psycopg 3), as the postgres superuser."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            argv = ("runuser", "-u", "postgres", "--", *argv)
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            _tool("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )

    def start(self) -> None:
        if not self.port:
            self.port = free_port()
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=on -c synchronous_commit=on -c max_connections=200"
        )
        self._run(
            _tool("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        deadline = time.monotonic() + 30
        while True:
            done = self._run(
                _tool("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                "SELECT datname FROM pg_database",
                check=False,
            )
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not answer: {done.stderr}\n{self.log()}")
            time.sleep(0.1)
        if self.database not in done.stdout.split():
            self._run(
                _tool("createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                self.database,
            )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode="immediate"`` is a crash as far as clients can tell."""
        self._run(_tool("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def create_database(self, name: str) -> str:
        """A new empty database on this server; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""
