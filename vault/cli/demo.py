"""``kinko demo``: a running vault with a sample procurement case, and a tour to paste.

The sample is seeded through the public HTTP API with the Python client, exactly as a user
would, so the demo also shows that the API works end to end.
"""

from __future__ import annotations

import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import uvicorn
from pydantic import SecretStr
from rich.console import Console

from clients import KinkoClient
from vault.api.app import create_app
from vault.cli._common import fail
from vault.cli.listen import listen, url
from vault.settings import Settings

console = Console(stderr=False, highlight=False, soft_wrap=True)

USERS = {
    # name: (global roles, description)
    "tanaka": (["procurement"], "調達担当 / procurement officer, drafter of the case"),
    "sato": ([], "上長 / supervisor of the case"),
    "suzuki": ([], "評価委員 / evaluator"),
    "yamada": ([], "契約審査会 / contract review board member"),
    "kansa": (["auditor"], "監査部 / auditor (metadata and audit log, never content)"),
}


def _wait_ready(
    server: uvicorn.Server, thread: threading.Thread, base_url: str, timeout: float = 60.0
) -> None:
    """Until the demo's own server has started and answers; a server that died is an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            fail("the demo server stopped while starting (its log is above)")
        if server.started:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    fail(f"the demo server did not start within {timeout:.0f} s")


def _seed(base_url: str, admin_token: str) -> dict[str, str]:
    tokens = {"admin": admin_token}
    with KinkoClient(base_url, admin_token) as admin:
        for name, (roles, _desc) in USERS.items():
            admin.create_user(name, roles)
            tokens[name] = admin.create_token(name)["token"]
    with KinkoClient(base_url, tokens["tanaka"]) as tanaka:
        case = tanaka.create_case("R8-0042", "次期基幹業務システム調達 / Core business system")
        cid = case["id"]
        with KinkoClient(base_url, admin_token) as admin:
            admin.set_member(cid, "sato", ["supervisor"])
            admin.set_member(cid, "suzuki", ["evaluator"])
            admin.set_member(cid, "yamada", ["reviewer"])
        spec = tanaka.create_document(
            cid, "specification", "仕様書（案）第1版.docx", "仕様書 v1: 要件定義…\n".encode()
        )
        tanaka.put_content(spec["id"], "仕様書 v2: 要件定義（改訂）\n".encode(), if_match=1)
        tanaka.finalize(spec["id"], 2)
        tanaka.create_document(
            cid, "estimated_price", "予定価格調書.xlsx", b"Estimated: 98,000,000 JPY\n"
        )
        tanaka.create_document(
            cid, "evaluation_criteria", "評価基準書.pdf", b"Evaluation criteria draft\n"
        )
        tanaka.create_document(cid, "evaluator_names", "評価委員名簿.txt", b"suzuki (external)\n")
    # A one-time link per user to set a password with, for the web interface.
    links = {}
    with KinkoClient(base_url, admin_token) as admin:
        for name in ("admin", *USERS):
            answer = admin.http.post(f"/api/v1/users/{name}/invitation")
            answer.raise_for_status()
            links[f"link:{name}"] = str(answer.json()["url"])
    return {
        "case_id": cid,
        "spec_id": spec["id"],
        **{f"token:{k}": v for k, v in tokens.items()},
        **links,
    }


def _tour(base_url: str, seed: dict[str, str]) -> list[tuple[str, list[str], int]]:
    """(explanation, argv, expected status); printed as curl commands, run by --check."""
    t = {k.split(":", 1)[1]: v for k, v in seed.items() if k.startswith("token:")}
    cid, doc = seed["case_id"], seed["spec_id"]
    purpose = quote("仕様書の最終確認 / final check of the specification", safe="")

    def curl(token: str | None, *args: str) -> list[str]:
        argv = ["curl", "-sS"]
        if token:
            argv += ["-H", f"Authorization: Bearer {token}"]
        return [*argv, *args]

    return [
        ("Who am I (the drafter)?", curl(t["tanaka"], f"{base_url}/api/v1/me"), 200),
        ("The case, its stage, members:", curl(t["tanaka"], f"{base_url}/api/v1/cases/{cid}"), 200),
        (
            "Documents the drafter may read:",
            curl(t["tanaka"], f"{base_url}/api/v1/cases/{cid}/documents"),
            200,
        ),
        (
            "Reading content needs a purpose (this one is refused with 400):",
            curl(t["tanaka"], f"{base_url}/api/v1/documents/{doc}/content"),
            400,
        ),
        (
            "…with a purpose it is served (and logged first):",
            curl(
                t["tanaka"],
                "-H",
                f"X-Access-Purpose: {purpose}",
                f"{base_url}/api/v1/documents/{doc}/content",
            ),
            200,
        ),
        (
            "The reviewer may not read it while the case is in drafting (403):",
            curl(
                t["yamada"],
                "-H",
                f"X-Access-Purpose: {purpose}",
                f"{base_url}/api/v1/documents/{doc}/content",
            ),
            403,
        ),
        (
            "Upload a new version (raw body, title never in the URL):",
            curl(
                t["tanaka"],
                "-X",
                "PUT",
                "-H",
                'If-Match: "2"',
                "--data-binary",
                "仕様書 v3",
                f"{base_url}/api/v1/documents/{doc}/content",
            ),
            201,
        ),
        (
            "The supervisor announces the tender:",
            curl(
                t["sato"],
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                '{"stage": "announced"}',
                f"{base_url}/api/v1/cases/{cid}/transitions",
            ),
            201,
        ),
        (
            "Now the final specification is public, for anyone:",
            curl(None, f"{base_url}/api/v1/public/documents"),
            200,
        ),
        (
            "The auditor fetches the latest signed checkpoint of the log:",
            curl(t["kansa"], f"{base_url}/api/v1/audit/checkpoint"),
            200,
        ),
        (
            "…and the access reviews waiting for someone other than the reader:",
            curl(t["kansa"], f"{base_url}/api/v1/reviews?status=pending"),
            200,
        ),
        (
            "The auditor reads the audit log (never the content):",
            curl(t["kansa"], f"{base_url}/api/v1/audit/events?limit=5&action=document.read"),
            200,
        ),
    ]


class _Stopped(Exception):
    """SIGTERM or SIGHUP arrived: stop like Ctrl-C, so the clean-up below still runs."""


def _on_signal(signum: int, _frame: object) -> None:
    raise _Stopped(signal.Signals(signum).name)


def run_demo(*, data_dir: Path | None, host: str, port: int, check: bool, keep: bool) -> int:
    # Which directory is the demo's own to remove: one it creates now, never one that existed
    # (a --data-dir the user already had, even an empty one, is left as it is).
    created = data_dir is None or not data_dir.exists()
    if data_dir is not None and (data_dir / "catalog.db").exists():
        fail(f"{data_dir} already holds a vault; the demo needs a new directory")
    if data_dir is not None and data_dir.exists() and not data_dir.is_dir():
        fail(f"{data_dir} is not a directory")
    sock = listen(host, port)
    port = int(sock.getsockname()[1])
    base_url = url(host, port)
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="kinko-demo-"))
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return _serve_demo(sock, data_dir, host, port, base_url, check)
    except (KeyboardInterrupt, _Stopped):
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        if created and not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
            console.print(f"Demo stopped; its data directory {data_dir} was removed.")
        else:
            console.print(f"Demo stopped; its data directory {data_dir} was kept.")
        sys.stdout.flush()


def _serve_demo(
    sock: socket.socket, data_dir: Path, host: str, port: int, base_url: str, check: bool
) -> int:
    admin_token = "kinko_demo_" + secrets.token_urlsafe(24)
    settings = Settings(
        data_dir=data_dir, host=host, port=port, bootstrap_token=SecretStr(admin_token)
    )
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="kinko-demo-server", daemon=True
    )
    thread.start()
    try:
        _wait_ready(server, thread, base_url)
        seed = _seed(base_url, admin_token)
        # A first signed checkpoint now, so the tour can show one without waiting 10 s.
        app.state.vault.audit.cut_checkpoint(force=True)
        console.print(f"[bold green]Kinko demo running at {base_url}[/]")
        console.print(f"Data directory: {data_dir}", markup=False)
        console.print("Users and their tokens:")
        for name, (_roles, desc) in {"admin": ([], "管理者 / administrator"), **USERS}.items():
            console.print(f"  {name:8} {desc}\n           {seed['token:' + name]}")
        console.print(f"\nCase R8-0042: {seed['case_id']}   specification: {seed['spec_id']}")
        console.print(f"Interactive API docs: {base_url}/docs")
        console.print(
            f"\nWeb interface: {base_url}/ui/ (日本語 / English). Open a user's one-time link "
            "to set their password and sign in as them:"
        )
        for name in ("admin", *USERS):
            console.print(f"  {name:8} {seed['link:' + name]}", markup=False)
        console.print()
        console.print("[bold]A tour — paste these into a shell:[/]\n")
        tour = _tour(base_url, seed)
        for text, argv, _status in tour:
            console.print(f"# {text}")
            console.print(shlex.join(argv), markup=False)
            console.print()
        if check:
            for text, argv, status in tour:
                probe = [*argv, "-o", "/dev/null", "-w", "%{http_code}"]
                result = subprocess.run(probe, capture_output=True, check=False, timeout=30)
                got = result.stdout.decode().strip()
                if result.returncode != 0 or got != str(status):
                    console.print(f"[red]tour step failed: {text} (HTTP {got}, wanted {status})")
                    return 1
            console.print("[green]tour ran: every command answered.[/]")
            return 0
        console.print(
            "Press Ctrl-C to stop (the data directory is removed then, unless --keep was given)."
        )
        sys.stdout.flush()
        while thread.is_alive():
            thread.join(0.5)
        return 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
