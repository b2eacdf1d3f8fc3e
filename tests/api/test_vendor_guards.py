"""Issue 12, the hard edges: mail that can never be sent is set aside without holding up the
rest (a shredded case), queued mail survives a key rotation, admins with case roles neither
decide nor read contact text, auditors list the register without its text, and malformed
notification ids are a 400."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from mail_support import Mailbox

from tests.conftest import ROOT, KinkoServer, serving


def tag() -> str:
    return uuid.uuid4().hex[:8]


def kinko(srv: KinkoServer, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "vault.cli.main", *args, "--data-dir", str(srv.data_dir)]
    return subprocess.run(
        argv, env=srv.env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def disclose(srv: KinkoServer, t: str, recipient: str) -> dict[str, Any]:
    drafter = srv.user(f"vg-d-{t}", ["procurement"])
    sup = srv.user(f"vg-s-{t}")
    case = drafter.create_case(f"VG-{t}", "案件")["id"]
    srv.admin.set_member(case, f"vg-s-{t}", ["supervisor"])
    doc = drafter.create_document(case, "specification", "仕様書.txt", b"spec")["id"]
    d = drafter.http.post(
        f"/api/v1/documents/{doc}/disclosures",
        json={
            "recipient_name": "受取人",
            "recipient_organization": "株式会社",
            "recipient_email": recipient,
            "reason": "確認",
        },
    ).json()
    assert sup.http.post(f"/api/v1/disclosures/{d['id']}/approve").status_code == 200
    return {"case": case, "sup": sup, "drafter": drafter}


def test_unsendable_mail_is_set_aside_and_queued_mail_survives_rotation(tmp_path: Path) -> None:
    box = Mailbox()
    env = {"KINKO_SMTP_URL": box.url, "KINKO_OUTBOX_POLL_SECONDS": "0.2"}
    with serving(tmp_path, **env) as srv:
        t1, t2 = tag(), tag()
        gone = disclose(srv, t1, f"gone-{t1}@vendor.example.jp")
        disclose(srv, t2, f"kept-{t2}@vendor.example.jp")
        # The first case is closed and shredded while its mail waits: it can never be sent.
        gone["sup"].transition(gone["case"], "closed")
        res = kinko(srv, "case", "shred", gone["case"], "--confirm")
        assert res.returncode == 0, res.stderr
        # The master key is rotated while the second message waits, and the server restarts.
        srv.stop()
        res = kinko(srv, "keys", "rotate", "--grace", "0")
        assert res.returncode == 0, res.stdout + res.stderr
        srv.start()
        box.start()
        try:
            box.wait_for(lambda m: f"kept-{t2}@vendor.example.jp" in m.rcpt_tos, 30)
            assert not [m for m in box.received if f"gone-{t1}@vendor.example.jp" in m.rcpt_tos]
            auditor = srv.user(f"vg-a-{t1}", ["auditor"])
            events = auditor.http.get(
                "/api/v1/audit/events", params={"action": "mail.send", "limit": 1000}
            ).json()["events"]
            refused = [e for e in events if e["decision"] == "deny"]
            assert len(refused) == 1
            assert refused[0]["case_id"] == gone["case"]
            assert "never_sendable" in refused[0]["reason"]
        finally:
            box.stop()


def test_admins_with_case_roles_decide_nothing_and_auditors_see_no_contact_text(
    tmp_path: Path,
) -> None:
    with serving(tmp_path) as srv:
        t = tag()
        drafter = srv.user(f"vg-d-{t}", ["procurement"])
        case = drafter.create_case(f"VA-{t}", "案件")["id"]
        srv.admin.set_member(case, "admin", ["supervisor"])
        contact = drafter.http.post(
            f"/api/v1/cases/{case}/contacts",
            json={
                "vendor": "秘密の業者",
                "channel": "phone",
                "planned_at": "2026-01-01T00:00:00Z",
                "participants": [f"vg-d-{t}"],
                "agenda": "秘密の議題",
            },
        ).json()
        # The admin holds the supervisor role, yet lists no text and decides nothing.
        listed = srv.admin.http.get("/api/v1/contacts", params={"case_id": case})
        assert listed.status_code == 200
        for item in listed.json()["contacts"]:
            assert item["vendor"] is None
            assert item["text_visible"] is False
        assert "秘密" not in listed.text
        ack = srv.admin.http.post(f"/api/v1/contacts/{contact['id']}/acknowledge")
        assert ack.status_code == 403
        doc = drafter.create_document(case, "specification", "仕様書.txt", b"spec")["id"]
        d = drafter.http.post(
            f"/api/v1/documents/{doc}/disclosures",
            json={
                "recipient_name": "受取人",
                "recipient_organization": "株式会社",
                "recipient_email": "r@vendor.example.jp",
                "reason": "確認",
            },
        ).json()
        refused = srv.admin.http.post(f"/api/v1/disclosures/{d['id']}/approve")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "supervisor_required"
        assert srv.admin.http.get(f"/api/v1/disclosures/{d['id']}").status_code == 403
        notes = srv.admin.http.get("/api/v1/notifications").json()["notifications"]
        assert not [n for n in notes if n["case_id"] == case]
        # Auditors see the register's shape, not its text.
        auditor = srv.user(f"vg-a-{t}", ["auditor"])
        one = auditor.http.get(f"/api/v1/contacts/{contact['id']}")
        assert one.status_code == 200
        assert (one.json()["vendor"], one.json()["agenda"]) == (None, None)
        assert one.json()["channel"] == "phone"
        csv_text = auditor.http.get(
            "/api/v1/contacts", params={"case_id": case, "format": "csv"}
        ).content.decode("utf-8-sig")
        assert "秘密" not in csv_text
        assert contact["id"] in csv_text


def test_malformed_notification_ids_are_refused(tmp_path: Path) -> None:
    with serving(tmp_path) as srv:
        user = srv.user(f"vg-n-{tag()}")
        for bad in (5, [True], ["1"], [0], "all"):
            resp = user.http.post("/api/v1/notifications/read", json={"ids": bad})
            assert resp.status_code == 400, (bad, resp.text)
            assert resp.json()["error"]["code"] == "invalid_ids"
        # The notice of the token the admin issued for this user is marked read, once.
        assert user.http.post("/api/v1/notifications/read", json={}).json() == {"marked": 1}
        assert user.http.post("/api/v1/notifications/read", json={}).json() == {"marked": 0}
        notes = user.http.get("/api/v1/notifications").json()["notifications"]
        assert [(n["kind"], n["read"]) for n in notes] == [("token.issued", True)]
