"""Two ``kinko serve`` nodes of one vault on one PostgreSQL and one S3 bucket (issue 11).

The nodes are started at the same moment on an empty database; everything below goes through
their HTTP APIs and the ``kinko`` CLI, as users and operators would.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from conftest import KinkoServer, run_kinko

from clients import KinkoClient
from clients.api import KinkoHTTPError
from vault.audit.merkle import verify_consistency
from vault.audit.note import NoteVerifier, parse_checkpoint

from .cluster_support import Cluster, cluster

pytestmark = pytest.mark.slow

PURPOSE = {"X-Access-Purpose": quote("複数ノードの確認", safe="")}


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("cluster")) as group:
        yield group


def on_both(group: Cluster, name: str, roles: list[str] | None = None) -> list[KinkoClient]:
    """One user's token, used through each node."""
    admin = group.nodes[0].admin
    resp = admin.http.post("/api/v1/users", json={"name": name, "roles": roles or []})
    assert resp.status_code in (201, 409), resp.text
    token = admin.create_token(name)["token"]
    return [node.client(token) for node in group.nodes]


def all_events(client: KinkoClient, **filters: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 1000, **filters, **({"cursor": cursor} if cursor else {})}
        page = client.http.get("/api/v1/audit/events", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        events += body["events"]
        cursor = body.get("next_cursor")
        if not cursor:
            return events


def case_with_document(group: Cluster, tag: str) -> tuple[list[KinkoClient], str, str]:
    drafters = on_both(group, f"cl-drafter-{tag}", ["procurement"])
    case = drafters[0].create_case(f"CL-{tag}", "複数ノード")["id"]
    doc = drafters[0].create_document(case, "budget", "予算.txt", b"v1 " + tag.encode())["id"]
    return drafters, case, doc


def content(client: KinkoClient, doc: str) -> httpx.Response:
    return client.http.get(f"/api/v1/documents/{doc}/content", headers=PURPOSE)


def test_both_nodes_came_up_on_one_migrated_database_with_one_admin(vault: Cluster) -> None:
    for node in vault.nodes:
        assert httpx.get(node.base_url + "/readyz").status_code == 200
        assert node.admin.me()["name"] == "admin"
        # Catalog and audit log are in PostgreSQL: no database file in a node's directory.
        assert not list(node.data_dir.rglob("*.db")), list(node.data_dir.rglob("*"))
    auditor = on_both(vault, "cl-auditor-start", ["auditor"])[1]
    users = vault.nodes[1].admin.http.get("/api/v1/users").json()["users"]
    assert [u["name"] for u in users if u["name"] == "admin"] == ["admin"]
    created = [
        e
        for e in all_events(auditor, action="user.create")
        if e["reason"] == "bootstrap" and e["target"] == "admin"
    ]
    assert len(created) == 1, created


def test_a_document_written_on_one_node_is_read_on_the_other(vault: Cluster) -> None:
    (d1, d2), _case, doc = case_with_document(vault, "rw")
    got = content(d2, doc)
    assert got.status_code == 200, got.text
    assert got.content == b"v1 rw"
    d2.put_content(doc, b"v2 from node 2")
    again = content(d1, doc)
    assert again.status_code == 200
    assert again.content == b"v2 from node 2"


def test_reads_through_both_nodes_leave_one_event_each_in_one_gapless_log(vault: Cluster) -> None:
    (d1, d2), _case, doc = case_with_document(vault, "seq")
    auditors = on_both(vault, "cl-auditor-seq", ["auditor"])
    request_ids: list[str] = []
    lock = threading.Lock()
    errors: list[str] = []

    def reader(client: KinkoClient) -> None:
        for _ in range(15):
            resp = content(client, doc)
            if resp.status_code != 200:
                errors.append(resp.text)
            with lock:
                request_ids.append(resp.headers["x-request-id"])

    # 2 nodes x 3 threads, each with a connection of its own.
    tokens = [d1.http.headers["authorization"], d2.http.headers["authorization"]]
    clients = [
        node.client(tokens[i].removeprefix("Bearer "))
        for i, node in enumerate(vault.nodes)
        for _ in range(3)
    ]
    threads = [threading.Thread(target=reader, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(request_ids) == 90 == len(set(request_ids))

    seen = [all_events(a) for a in auditors]
    # The second listing also holds the first listing's own audit.query events.
    assert seen[1][: len(seen[0])] == seen[0], "the two nodes serve different logs"
    assert [e["seq"] for e in seen[0]] == list(range(len(seen[0])))
    reads = [e["request_id"] for e in seen[0] if e["action"] == "document.read"]
    for rid in request_ids:
        assert reads.count(rid) == 1, rid


def _checkpoint_via(vault: Cluster, node: KinkoServer) -> str:
    done = run_kinko("audit", "checkpoint", env=vault.cli_env(node))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_checkpoints_cut_via_either_node_verify_under_one_key_and_are_consistent(
    vault: Cluster,
) -> None:
    (d1, d2), _case, doc = case_with_document(vault, "cp")
    assert content(d1, doc).status_code == 200
    first = _checkpoint_via(vault, vault.nodes[0])
    assert content(d2, doc).status_code == 200
    second = _checkpoint_via(vault, vault.nodes[1])

    a1, a2 = on_both(vault, "cl-auditor-cp", ["auditor"])
    keys = {a.http.get("/api/v1/audit/public-key").text.strip() for a in (a1, a2)}
    assert len(keys) == 1, keys
    verifier = NoteVerifier.from_verifier_key(keys.pop())
    old = parse_checkpoint(verifier.verify(first))
    new = parse_checkpoint(verifier.verify(second))
    assert old.origin == new.origin == verifier.name
    assert old.size < new.size
    # Either node serves the newest checkpoint, whichever node cut it.
    assert a1.http.get("/api/v1/audit/checkpoint").text == second
    for a in (a1, a2):
        proof = a.http.get(
            "/api/v1/audit/proofs/consistency", params={"old": old.size, "new": new.size}
        ).json()
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        verify_consistency(old.size, new.size, old.root, new.root, hashes)


def test_export_verify_and_query_work_on_the_shared_log_while_nodes_serve(
    vault: Cluster, tmp_path: Path
) -> None:
    (_d1, d2), _case, doc = case_with_document(vault, "exp")
    keep_reading = threading.Event()
    statuses: list[int] = []

    def reader() -> None:
        while not keep_reading.is_set():
            statuses.append(content(d2, doc).status_code)

    background = threading.Thread(target=reader)
    background.start()
    try:
        out = tmp_path / "bundle"
        node = vault.nodes[0]
        exported = run_kinko("audit", "export", "--out", str(out), env=vault.cli_env(node))
        assert exported.returncode == 0, exported.stdout + exported.stderr
        key = tmp_path / "verifier.key"
        auditor = on_both(vault, "cl-auditor-exp", ["auditor"])[0]
        key.write_text(auditor.http.get("/api/v1/audit/public-key").text)
        # The bundle names no node: the same key verifies it, the live log is verified too.
        offline = run_kinko("audit", "verify", str(out), "--key", str(key), env=vault.cli_env(node))
        assert offline.returncode == 0, offline.stdout + offline.stderr
        live = run_kinko(
            "audit", "verify", "--data-dir", str(node.data_dir), env=vault.cli_env(node)
        )
        assert live.returncode == 0, live.stdout + live.stderr
        queried = run_kinko(
            "audit", "query", "--document-id", doc, "--json", env=vault.cli_env(vault.nodes[1])
        )
        assert queried.returncode == 0, queried.stderr
    finally:
        keep_reading.set()
        background.join()
    assert statuses, "the reader never ran"
    assert set(statuses) == {200}, set(statuses)
    lines = [line for line in queried.stdout.splitlines() if line.strip()]
    assert any('"document.read"' in line for line in lines), queried.stdout[:500]


def _refused_on(client: KinkoClient, path: str, changed: float, **kw: Any) -> float:
    """Seconds from ``changed`` until ``client`` is refused at ``path``."""
    while True:
        resp = client.http.get(path, **kw)
        if resp.status_code in (401, 403, 404):
            return time.monotonic() - changed
        assert resp.status_code == 200, resp.text
        assert time.monotonic() - changed < 3, f"{path} still allowed 3 s after the change"
        time.sleep(0.02)


def test_revocation_disabling_and_removal_on_one_node_hold_on_the_other_within_1s(
    vault: Cluster,
) -> None:
    admin1 = vault.nodes[0].admin
    # A revoked token.
    _, c2 = on_both(vault, "cl-revoked")
    tok = admin1.create_token("cl-revoked")
    c2 = vault.nodes[1].client(tok["token"])
    assert c2.http.get("/api/v1/me").status_code == 200  # node 2 has it cached now
    resp = admin1.http.delete(f"/api/v1/users/cl-revoked/tokens/{tok['id']}")
    assert resp.status_code in (200, 204), resp.text
    took = _refused_on(c2, "/api/v1/me", time.monotonic())
    assert took <= 1.0
    # Well inside the cache's own 1 s lifetime: node 2's watcher heard of the change.
    assert took < 0.5, took

    # A disabled user.
    _, d2 = on_both(vault, "cl-disabled")
    assert d2.http.get("/api/v1/me").status_code == 200
    assert admin1.http.post("/api/v1/users/cl-disabled/disable").status_code == 200
    assert _refused_on(d2, "/api/v1/me", time.monotonic()) <= 1.0

    # A member removed from the case can no longer read its documents.
    (drafter1, _), case, doc = case_with_document(vault, "rm")
    _, member2 = on_both(vault, "cl-member")
    admin1.set_member(case, "cl-member", ["drafter"])
    assert content(member2, doc).status_code == 200
    assert admin1.http.delete(f"/api/v1/cases/{case}/members/cl-member").status_code in (200, 204)
    path = f"/api/v1/documents/{doc}/content"
    assert _refused_on(member2, path, time.monotonic(), headers=PURPOSE) <= 1.0
    assert drafter1.http.get(path, headers=PURPOSE).status_code == 200


def _public_ids(node: KinkoServer) -> set[str]:
    resp = httpx.get(node.base_url + "/api/v1/public/documents", timeout=10)
    assert resp.status_code == 200, resp.text
    return {d["id"] for d in resp.json()["documents"]}


def test_a_scheduled_announcement_releases_on_every_node_at_its_instant(vault: Cluster) -> None:
    tag = uuid.uuid4().hex[:6]
    sup1, sup2 = on_both(vault, f"cl-sched-{tag}", ["procurement"])
    docs = {}
    cases = {}
    for which in ("kept", "cancelled"):
        case = sup1.create_case(f"CL-S-{which}-{tag}", "公告予定")["id"]
        doc = sup1.create_document(case, "specification", "仕様書.txt", b"spec")["id"]
        sup1.finalize(doc, 1)
        vault.nodes[0].admin.set_member(case, f"cl-sched-{tag}", ["supervisor"])
        cases[which], docs[which] = case, doc
    at = datetime.now(UTC) + timedelta(seconds=4)
    when = at.isoformat().replace("+00:00", "Z")
    sup1.transition(cases["kept"], "announced", at=when)
    planned = sup1.transition(cases["cancelled"], "announced", at=when)
    # Cancelled through the other node: no node may release it.
    cancel = sup2.http.delete(f"/api/v1/cases/{cases['cancelled']}/transitions/{planned['id']}")
    assert cancel.status_code == 204, cancel.text
    while datetime.now(UTC) < at - timedelta(milliseconds=300):
        for node in vault.nodes:
            assert docs["kept"] not in _public_ids(node), "released before its instant"
        time.sleep(0.1)
    while datetime.now(UTC) < at + timedelta(milliseconds=50):
        time.sleep(0.01)
    for node in vault.nodes:
        public = _public_ids(node)
        assert docs["kept"] in public, "not released at its instant"
        assert docs["cancelled"] not in public, "a cancelled transition released a document"


def test_concurrent_versions_through_both_nodes_are_numbered_without_gap_or_loss(
    vault: Cluster,
) -> None:
    (d1, d2), _case, doc = case_with_document(vault, "ver")
    tokens = [c.http.headers["authorization"].removeprefix("Bearer ") for c in (d1, d2)]
    writers = [node.client(tokens[i]) for i, node in enumerate(vault.nodes) for _ in range(4)]
    answers: dict[int, bytes] = {}
    lock = threading.Lock()

    def write(client: KinkoClient, n: int) -> None:
        for i in range(5):
            body = f"writer {n} version {i}".encode()
            # A write that raced another one is refused with 409 concurrent_write, never
            # acknowledged, and asks to be retried: the writer does so.
            while True:
                try:
                    got = client.put_content(doc, body)
                    break
                except KinkoHTTPError as exc:
                    if (exc.status, exc.code) != (409, "concurrent_write"):
                        raise
            with lock:
                assert int(got["version"]) not in answers
                answers[int(got["version"])] = body

    threads = [threading.Thread(target=write, args=(c, n)) for n, c in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == list(range(2, 42))
    assert d2.document(doc)["latest_version"] == 41
    # No acknowledged write is lost: each version holds what its writer was told it holds.
    for version, body in answers.items():
        assert d1.read(doc, "複数ノードの確認", version) == body

    # If-Match across nodes: two writers that both saw version 41, one through each node.
    results: list[int] = []

    def conditional(client: KinkoClient) -> None:
        resp = client.http.put(
            f"/api/v1/documents/{doc}/content",
            content=b"conditional",
            headers={"If-Match": '"41"', "Content-Type": "text/plain"},
        )
        with lock:
            results.append(resp.status_code)

    pair = [threading.Thread(target=conditional, args=(c,)) for c in (d1, d2)]
    for t in pair:
        t.start()
    for t in pair:
        t.join()
    assert sorted(results) == [201, 412], results


def test_a_web_session_and_its_form_token_work_through_either_node(
    vault: Cluster, tmp_path: Path
) -> None:
    node1, node2 = vault.nodes
    name = "cl-web"
    admin = node1.admin
    assert admin.http.post("/api/v1/users", json={"name": name}).status_code == 201
    url = admin.http.post(f"/api/v1/users/{name}/invitation").json()["url"]
    path = url.split("://", 1)[1].split("/", 1)[1]
    with httpx.Client(base_url=node1.base_url, follow_redirects=False) as b1:
        form = b1.get("/" + path)
        assert form.status_code == 200, form.text[:300]
        csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        password = "cluster-" + uuid.uuid4().hex
        done = b1.post("/" + path, data={"csrf": csrf, "password": password, "confirm": password})
        assert done.status_code == 303, done.text[:300]
        cookies = dict(b1.cookies)
    # The session made on node 1 is known to node 2, and a form token from a page of node 2
    # is accepted by node 1 (one server key, sessions in the shared catalog).
    with httpx.Client(base_url=node2.base_url, cookies=cookies, follow_redirects=False) as b2:
        page = b2.get("/ui/me")
        assert page.status_code == 200, page.text[:300]
        assert name in page.text
        csrf2 = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    with httpx.Client(base_url=node1.base_url, cookies=cookies, follow_redirects=False) as b1:
        out = b1.post("/ui/sign-out", data={"csrf": csrf2})
        assert out.status_code == 303, out.text[:300]
    with httpx.Client(base_url=node2.base_url, cookies=cookies, follow_redirects=False) as b2:
        assert b2.get("/ui/me").status_code in (302, 303)

    # Failed sign-ins are counted in the shared catalog: ten wrong passwords spread over both
    # nodes lock the name on both.
    answers = []
    for attempt in range(11):
        node = vault.nodes[attempt % 2]
        with httpx.Client(base_url=node.base_url, follow_redirects=False) as b:
            page = b.get("/ui/sign-in")
            token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            answers.append(
                b.post(
                    "/ui/sign-in",
                    data={"csrf": token, "name": name, "password": "wrong-" + str(attempt)},
                ).status_code
            )
    assert 429 not in answers[:10], answers
    assert answers[10] == 429, answers
    for node in vault.nodes:
        with httpx.Client(base_url=node.base_url, follow_redirects=False) as b:
            page = b.get("/ui/sign-in")
            token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            right = b.post("/ui/sign-in", data={"csrf": token, "name": name, "password": password})
            assert right.status_code == 429, (node.base_url, right.status_code)


def test_no_title_or_content_reaches_postgresql_in_plaintext(vault: Cluster) -> None:
    """Guarantee 1 on PostgreSQL: not in any table, nor in the write-ahead log."""
    tag = uuid.uuid4().hex
    title = f"予定価格の内訳-{tag}.xlsx"
    body = f"落札予定価格 {tag} 円".encode()
    drafters = on_both(vault, f"cl-plain-{tag[:6]}", ["procurement"])
    case = drafters[0].create_case(f"CL-P-{tag[:8]}", f"案件名-{tag}")["id"]
    doc = drafters[1].create_document(case, "estimated_price", title, body)["id"]
    drafters[0].put_content(doc, body + b" v2")
    assert content(drafters[1], doc).content == body + b" v2"
    import psycopg

    conninfo = vault.pg.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # the heap files on disk hold what the tables hold
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        assert "versions" in tables
        assert "audit_events" in tables
        cells = 0
        number_seen = False
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - catalog names
                for cell in row:
                    raw = (
                        bytes(cell) if isinstance(cell, bytes | memoryview) else str(cell).encode()
                    )
                    cells += 1
                    assert tag.encode() not in raw, f"plaintext in table {table}"
                    number_seen = number_seen or f"CL-P-{tag[:8]}".encode() in raw
    # The scan does see what is stored in the clear (a case number is not secret).
    assert number_seen
    assert cells > 100
    # The database's own files, write-ahead log included.
    number_on_disk = False
    for path in vault.pg.data.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert tag.encode() not in data, f"plaintext in {path}"
            number_on_disk = number_on_disk or f"CL-P-{tag[:8]}".encode() in data
    assert number_on_disk
