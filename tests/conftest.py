"""Shared fixtures: a real Kinko server (uvicorn on a free loopback port) and its clients."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from response_log import record_response

from clients import KinkoClient

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``suite_end`` run after all others (they look at what the others did)."""
    items.sort(key=lambda item: item.get_closest_marker("suite_end") is not None)


def missing_requirement(reason: str) -> NoReturn:
    """Skip a test whose requirement pip cannot install, saying what is missing and how to get it.

    ``.ci/run`` installs every such requirement and sets ``KINKO_REQUIRE_ALL=1``, which turns the
    skip into a failure, so CI can never pass by skipping what it should have tested.
    """
    if os.environ.get("KINKO_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason}; KINKO_REQUIRE_ALL=1 forbids skipping")
    pytest.skip(reason)


def require_tool(name: str, package: str | None = None) -> str:
    """The path of a system tool pip cannot install; skip (naming it) when it is absent."""
    import shutil

    path = shutil.which(name)
    if path is not None:
        return path
    missing_requirement(f"needs {name} (Debian package {package or name}), which is not installed")


def cli_env(**overrides: str) -> dict[str, str]:
    """The environment of a test's ``kinko`` command: the test run's own, without any
    ``KINKO_*`` setting it may carry, the checkout importable, then ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINKO_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(overrides)
    return env


# The database settings of each server a test started, by its data directory: a CLI command
# run on that directory needs them when the databases are not files in it (PostgreSQL).  They
# are kept in this process's environment, as test modules import this file under a second
# name (tests.conftest) with module state of its own; children never see the variable, as
# every child environment drops KINKO_* settings.
_DATABASES_VAR = "KINKO_TEST_SERVER_DATABASES"


def _databases_for(args: tuple[str, ...]) -> dict[str, str]:
    known = json.loads(os.environ.get(_DATABASES_VAR, "{}"))
    for flag, value in itertools.pairwise(args):
        if flag == "--data-dir":
            return dict(known.get(str(Path(value).resolve()), {}))
    return {}


def _remember_databases(data_dir: Path, databases: dict[str, str]) -> None:
    known = json.loads(os.environ.get(_DATABASES_VAR, "{}"))
    known[str(data_dir.resolve())] = databases
    os.environ[_DATABASES_VAR] = json.dumps(known)


def catalog_sql(srv: KinkoServer, sql: str, **params: Any) -> None:
    """Change a server's catalog behind its back, as another node or an old version would:
    one committed statement on whichever database the server runs on."""
    from sqlalchemy import create_engine, text

    url = srv.env.get("KINKO_DATABASE_URL") or f"sqlite:///{srv.data_dir / 'catalog.db'}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def server_cli_env(srv: KinkoServer, **overrides: str) -> dict[str, str]:
    """``cli_env`` for a command run on ``srv``'s data directory: with its databases."""
    databases = {
        k: v for k, v in srv.env.items() if k in ("KINKO_DATABASE_URL", "KINKO_AUDIT_DATABASE_URL")
    }
    return cli_env(**databases, **overrides)


def run_kinko(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real ``kinko`` CLI as a user would (text output captured, any exit code)."""
    env = cli_env() if env is None else dict(env)
    for key, value in _databases_for(args).items():
        env.setdefault(key, value)
    return subprocess.run(
        [sys.executable, "-m", "vault.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class KinkoServer:
    """A running ``kinko serve`` process on its own data directory."""

    data_dir: Path
    admin_token: str
    env: dict[str, str]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    clients: list[KinkoClient] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.port = free_port()
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        argv = [sys.executable, "-m", "vault.cli.main", "serve"]
        argv += ["--data-dir", str(self.data_dir), "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            # The child keeps its own copy of the descriptor; ours is closed at once.
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def client(self, token: str | None = None, **kw: object) -> KinkoClient:
        c = KinkoClient(self.base_url, token, **kw)  # type: ignore[arg-type]
        c.http.event_hooks["response"].append(record_response)
        self.clients.append(c)
        return c

    @property
    def admin(self) -> KinkoClient:
        return self.client(self.admin_token)

    def user(self, name: str, roles: list[str] | None = None) -> KinkoClient:
        """Create a user (if needed) and return a client holding a fresh token of theirs."""
        admin = self.admin
        resp = admin.http.post("/api/v1/users", json={"name": name, "roles": roles or []})
        assert resp.status_code in (201, 409), resp.text
        token = admin.create_token(name)["token"]
        return self.client(token)

    def close_clients(self) -> None:
        for c in self.clients:
            c.close()
        self.clients.clear()


# KINKO_TEST_STORAGE=s3 runs every server the tests start on the S3 backend, against one
# moto server over HTTP shared by the run (CI runs the API suite once that way).
TEST_STORAGE = os.environ.get("KINKO_TEST_STORAGE", "local")
_moto: Any = None


def _s3_env_for_tests() -> dict[str, str]:
    global _moto
    import boto3
    from moto.server import ThreadedMotoServer
    from s3_support import aws_env_for_subprocess

    aws = aws_env_for_subprocess()
    if _moto is None:
        _moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        _moto.start()
    host, port = _moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = "kinko-suite-" + secrets.token_hex(6)
    boto3.session.Session(
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        region_name=aws["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return {
        "KINKO_STORAGE": "s3",
        "KINKO_S3_BUCKET": bucket,
        "KINKO_S3_ENDPOINT_URL": endpoint,
        "KINKO_S3_PREFIX": "blobs/",
        **aws,
    }


# KINKO_TEST_DATABASE=postgresql runs every server the tests start on PostgreSQL (catalog and
# audit log in one fresh database per server), on one throwaway cluster shared by the run.
TEST_DATABASE = os.environ.get("KINKO_TEST_DATABASE", "sqlite")
_postgres: Any = None


def shared_postgres() -> Any:
    """The run's throwaway PostgreSQL cluster (tests/pg_support.py), started on first use."""
    global _postgres
    if _postgres is None:
        import atexit

        from pg_support import PostgresServer

        server = PostgresServer()
        server.init()
        server.start()
        _postgres = server

        def _stop() -> None:
            server.stop("immediate")
            server.remove()

        atexit.register(_stop)
    return _postgres


def _pg_env_for_tests() -> dict[str, str]:
    url = shared_postgres().create_database("kinko_" + secrets.token_hex(6))
    return {"KINKO_DATABASE_URL": url, "KINKO_AUDIT_DATABASE_URL": url}


def make_server(tmp: Path, **extra_env: str) -> KinkoServer:
    data_dir = tmp / "data"
    token = "test-admin-" + secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINKO_")}
    env.update({"KINKO_BOOTSTRAP_TOKEN": token, "PYTHONPATH": str(ROOT)})
    if TEST_STORAGE == "s3" and "KINKO_STORAGE" not in extra_env:
        env.update(_s3_env_for_tests())
    if TEST_DATABASE == "postgresql" and "KINKO_DATABASE_URL" not in extra_env:
        env.update(_pg_env_for_tests())
    env.update(extra_env)
    databases = {k: env[k] for k in ("KINKO_DATABASE_URL", "KINKO_AUDIT_DATABASE_URL") if k in env}
    if databases:
        _remember_databases(data_dir, databases)
    return KinkoServer(data_dir=data_dir, admin_token=token, env=env)


@contextmanager
def serving(tmp: Path, **extra_env: str) -> Iterator[KinkoServer]:
    """A started server of the caller's own; at the end its clients close and it stops."""
    srv = make_server(tmp, **extra_env)
    srv.start()
    try:
        yield srv
    finally:
        srv.close_clients()
        srv.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinkoServer]:
    """One server per test module (state carries over between the module's tests)."""
    with serving(tmp_path_factory.mktemp("kinko")) as srv:
        yield srv


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[KinkoServer]:
    """A server of the test's own, for tests that break or inspect the data directory."""
    with serving(tmp_path) as srv:
        yield srv
