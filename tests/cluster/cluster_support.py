"""Several ``kinko serve`` nodes of one vault: one PostgreSQL (catalog and audit log), one S3
bucket on moto's server, shared key files, and a data directory of each node's own.

This is the deployment of issue 11 on one machine: nothing is shared between the nodes but
what a real cluster shares (the database, the bucket, the mounted secrets).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from conftest import ROOT, KinkoServer, _s3_env_for_tests
from pg_support import PostgresServer


@dataclass
class Cluster:
    root: Path
    pg: PostgresServer
    env: dict[str, str]
    admin_token: str
    nodes: list[KinkoServer] = field(default_factory=list)

    def add_node(self) -> KinkoServer:
        data_dir = self.root / f"node{len(self.nodes) + 1}" / "data"
        data_dir.parent.mkdir(parents=True)
        node = KinkoServer(data_dir=data_dir, admin_token=self.admin_token, env=dict(self.env))
        self.nodes.append(node)
        return node

    def start_together(self) -> None:
        """Start every node not running yet at the same moment (threads racing)."""
        waiting = [n for n in self.nodes if n.proc is None]
        errors: list[BaseException] = []

        def start(node: KinkoServer) -> None:
            try:
                node.start(timeout=60)
            except BaseException as exc:  # reported below, with the node's log
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(n,)) for n in waiting]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def cli_env(self, node: KinkoServer) -> dict[str, str]:
        """The environment of a ``kinko`` command run on ``node``'s host."""
        env = {k: v for k, v in node.env.items() if k != "KINKO_BOOTSTRAP_TOKEN"}
        env["KINKO_DATA_DIR"] = str(node.data_dir)
        return env

    def stop(self) -> None:
        for node in self.nodes:
            node.close_clients()
            node.stop()


@contextmanager
def cluster(root: Path, nodes: int = 2, **extra_env: str) -> Iterator[Cluster]:
    """A fresh PostgreSQL cluster, bucket and key directory, and ``nodes`` nodes started at once."""
    pg = PostgresServer()
    pg.init()
    pg.start()
    try:
        secrets_dir = root / "secrets"
        secrets_dir.mkdir(mode=0o700, parents=True)
        token = "cluster-admin-" + secrets.token_hex(16)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KINKO_")}
        env.update(_s3_env_for_tests())
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "KINKO_BOOTSTRAP_TOKEN": token,
                "KINKO_DATABASE_URL": pg.url,
                "KINKO_AUDIT_DATABASE_URL": pg.url,
                "KINKO_MASTER_KEY_FILE": str(secrets_dir / "master.key"),
                "KINKO_AUDIT_SIGNING_KEY_FILE": str(secrets_dir / "audit-signing.key"),
                "KINKO_SERVER_KEY_FILE": str(secrets_dir / "server.key"),
                **extra_env,
            }
        )
        group = Cluster(root=root, pg=pg, env=env, admin_token=token)
        for _ in range(nodes):
            group.add_node()
        try:
            group.start_together()
            yield group
        finally:
            group.stop()
    finally:
        pg.stop("immediate")
        pg.remove()
