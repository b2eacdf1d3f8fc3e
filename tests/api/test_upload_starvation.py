"""Slow uploads cannot starve the server: they wait for upload slots, other requests go on.

Each streaming upload holds a worker thread while its body arrives.  Forty-five clients that
send headers and a little of a declared body, then stall, used to take every thread of the
shared pool (40), so even ``/healthz`` and authentication timed out.  Uploads now take threads
from their own limiter, and a body that stops arriving is refused with 408 after the idle
timeout, leaving no version behind.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from conftest import KinkoServer, make_server

STALLED = 45


@pytest.fixture
def quick_timeout_server(tmp_path) -> Iterator[KinkoServer]:  # type: ignore[no-untyped-def]
    srv = make_server(tmp_path, KINKO_UPLOAD_IDLE_TIMEOUT_SECONDS="3")
    srv.start()
    try:
        yield srv
    finally:
        srv.close_clients()
        srv.stop()


def _stall(port: int, token: str, path: str, title: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"X-Kinko-Title: {title}\r\nContent-Length: 1048576\r\n\r\n"
    )
    if "documents?" in path:
        head = head.replace("PUT ", "POST ", 1)
    sock.sendall(head.encode() + b"x" * 1024)
    return sock


def test_stalled_uploads_do_not_starve_other_requests(quick_timeout_server: KinkoServer) -> None:
    srv = quick_timeout_server
    drafter = srv.user("st-drafter", ["procurement"])
    case = drafter.create_case(f"ST-{uuid.uuid4().hex[:8]}", "停滞")["id"]
    token = drafter.http.headers["Authorization"].split()[1]
    path = f"/api/v1/cases/{case}/documents?class=budget"
    socks = [_stall(srv.port, token, path, quote("停滞", safe="")) for _ in range(STALLED)]
    try:
        time.sleep(0.5)  # let every stalled upload reach the server
        t0 = time.monotonic()
        assert httpx.get(f"{srv.base_url}/healthz", timeout=5).status_code == 200
        assert drafter.http.get("/api/v1/me", timeout=5).status_code == 200
        assert time.monotonic() - t0 < 5
        # A real upload still goes through once a slot frees up (after the idle timeout).
        done = drafter.create_document(case, "schedule", "予定", b"fine")
        assert done["version"] == 1
    finally:
        for s in socks:
            s.close()
    # The stalled uploads were refused with 408 (logged) and left no document.
    assert [d["title"] for d in drafter.documents(case)] == ["予定"]


def test_a_stalled_upload_is_refused_with_408(quick_timeout_server: KinkoServer) -> None:
    srv = quick_timeout_server
    drafter = srv.user("st2-drafter", ["procurement"])
    case = drafter.create_case(f"ST2-{uuid.uuid4().hex[:8]}", "停滞")["id"]
    token = drafter.http.headers["Authorization"].split()[1]
    sock = _stall(srv.port, token, f"/api/v1/cases/{case}/documents?class=budget", "t")
    try:
        sock.settimeout(15)
        data = b""
        while b"upload_stalled" not in data:
            more = sock.recv(4096)
            if not more:
                break
            data += more
        answer = data.decode(errors="replace")
    finally:
        sock.close()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "upload_stalled" in answer
    assert drafter.documents(case) == []
