"""Nodes with data directories of their own share the vault's keys through the files
KINKO_MASTER_KEY_FILE, KINKO_AUDIT_SIGNING_KEY_FILE and KINKO_SERVER_KEY_FILE name: started
together with none of the files there, they create each once and all read the same ones."""

from __future__ import annotations

import stat
import threading
from contextlib import ExitStack
from pathlib import Path

import httpx
from conftest import KinkoServer, make_server

CSRF_FIELD = 'name="csrf" value="'


def _csrf(html: str) -> str:
    start = html.index(CSRF_FIELD) + len(CSRF_FIELD)
    return html[start : html.index('"', start)]


def test_two_nodes_started_together_share_one_set_of_keys(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    shared = {
        "KINKO_MASTER_KEY_FILE": str(secrets_dir / "master.key"),
        "KINKO_AUDIT_SIGNING_KEY_FILE": str(secrets_dir / "audit-signing.key"),
        "KINKO_SERVER_KEY_FILE": str(secrets_dir / "server.key"),
    }
    nodes: list[KinkoServer] = []
    for i in (1, 2):
        (tmp_path / f"node{i}").mkdir()
        nodes.append(make_server(tmp_path / f"node{i}", **shared))
    with ExitStack() as stack:
        for node in nodes:
            stack.callback(node.stop)
            stack.callback(node.close_clients)
        # Both start at the same moment, racing to create the missing key files.
        starters = [threading.Thread(target=node.start) for node in nodes]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        for node in nodes:
            assert node.proc is not None, "a node did not start"
            assert httpx.get(node.base_url + "/healthz").status_code == 200
        for name in ("master.key", "audit-signing.key", "server.key"):
            path = secrets_dir / name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        for node in nodes:
            # No key of the node's own in its data directory.
            assert not (node.data_dir / "master.key").exists()
            assert not (node.data_dir / "audit-signing.key").exists()
            assert not (node.data_dir / "idempotency.key").exists()
        a, b = (node.user("keys-aud", ["auditor"]) for node in nodes)
        key_a = a.http.get("/api/v1/audit/public-key").text
        key_b = b.http.get("/api/v1/audit/public-key").text
        assert key_a == key_b
        assert key_a.strip() == key_a.strip().splitlines()[0]  # one verifier key line
        # A form token one node handed out is good on the other: a browser behind a load
        # balancer may post to either.  (The wrong password then gets 401, not a CSRF 403.)
        with httpx.Client(base_url=nodes[0].base_url) as first:
            page = first.get("/ui/sign-in")
            token, cookies = _csrf(page.text), dict(first.cookies)
        with httpx.Client(base_url=nodes[1].base_url, cookies=cookies) as second:
            answer = second.post(
                "/ui/sign-in", data={"csrf": token, "name": "nobody", "password": "x" * 12}
            )
        assert answer.status_code == 401, answer.text[:300]
