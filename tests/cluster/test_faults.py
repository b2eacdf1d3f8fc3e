"""Faults of a two-node vault (issue 11): a node killed mid-upload, PostgreSQL going away.

Each test has a cluster of its own, as it breaks it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import run_kinko

from .cluster_support import cluster
from .test_nodes import all_events, case_with_document, content, on_both

pytestmark = pytest.mark.slow


def test_a_node_killed_mid_upload_loses_nothing_acknowledged(tmp_path: Path) -> None:
    with cluster(tmp_path) as vault:
        node1 = vault.nodes[0]
        (d1, d2), _case, doc = case_with_document(vault, "kill")
        acknowledged = d1.put_content(doc, b"acknowledged on node 1")["version"]
        started = threading.Event()

        def slow_body() -> Iterator[bytes]:
            # An upload that keeps streaming until the node dies under it.
            for _ in range(600):
                yield b"x" * 65536
                started.set()
                time.sleep(0.01)

        outcome: list[BaseException | int] = []

        def upload() -> None:
            try:
                resp = httpx.put(
                    f"{node1.base_url}/api/v1/documents/{doc}/content",
                    content=slow_body(),
                    headers={
                        "Authorization": d1.http.headers["authorization"],
                        "Content-Type": "application/octet-stream",
                    },
                    timeout=60,
                )
                outcome.append(resp.status_code)
            except httpx.HTTPError as exc:
                outcome.append(exc)

        uploader = threading.Thread(target=upload)
        uploader.start()
        assert started.wait(30)
        time.sleep(0.5)
        node1.stop(signal.SIGKILL)
        uploader.join(60)
        assert len(outcome) == 1
        assert isinstance(outcome[0], httpx.HTTPError), outcome

        # The other node keeps serving, with the acknowledged version and nothing half-made.
        meta = d2.document(doc)
        assert meta["latest_version"] == acknowledged
        got = content(d2, doc)
        assert got.status_code == 200
        assert got.content == b"acknowledged on node 1"

        # Restarted, the killed node rejoins the same log.
        node1.start(timeout=60)
        assert content(node1.client(d1.http.headers["authorization"][7:]), doc).status_code == 200
        auditor = on_both(vault, "kill-auditor", ["auditor"])[0]
        seqs = [e["seq"] for e in all_events(auditor)]
        assert seqs == list(range(len(seqs)))
        verified = run_kinko(
            "audit", "verify", "--data-dir", str(node1.data_dir), env=vault.cli_env(node1)
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_with_postgresql_gone_every_node_refuses_reads_and_recovers_by_itself(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path) as vault:
        (d1, d2), _case, doc = case_with_document(vault, "pgdown")
        for c in (d1, d2):
            assert content(c, doc).status_code == 200
        vault.pg.stop("immediate")
        try:
            for node, c in zip(vault.nodes, (d1, d2), strict=True):
                got = content(c, doc)
                assert got.status_code == 503, (got.status_code, got.text[:300])
                assert b"v1 pgdown" not in got.content
                assert got.json()["error"]["code"] in ("audit_unavailable", "store_unavailable")
                ready = httpx.get(node.base_url + "/readyz", timeout=30)
                assert ready.status_code == 503
                failing = {k for k, v in ready.json()["checks"].items() if v != "ok"}
                assert {"catalog", "audit"} <= failing, ready.text
                # Liveness is not readiness: the process itself is fine.
                assert httpx.get(node.base_url + "/healthz").status_code == 200
        finally:
            vault.pg.start()
        # No restart: each node finds the database again on its own.
        for node, c in zip(vault.nodes, (d1, d2), strict=True):
            deadline = time.monotonic() + 20
            while True:
                got = content(c, doc)
                if got.status_code == 200:
                    break
                assert time.monotonic() < deadline, got.text
                time.sleep(0.2)
            assert got.content == b"v1 pgdown"
            assert httpx.get(node.base_url + "/readyz").status_code == 200
        auditor = on_both(vault, "pgdown-auditor", ["auditor"])[1]
        seqs = [e["seq"] for e in all_events(auditor)]
        assert seqs == list(range(len(seqs)))
        reads = all_events(auditor, action="document.read", document_id=doc)
        assert sum(e["decision"] == "allow" for e in reads) >= 4
