"""The outbox on two nodes (issue 12): each message reaches the SMTP server once, whichever
node committed it and though both nodes send; overdue contacts are told once."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mail_support import Mailbox

from .cluster_support import Cluster, cluster
from .test_nodes import all_events, on_both

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[Cluster]:
    root: Path = tmp_path_factory.mktemp("mail-cluster")
    with cluster(
        root,
        KINKO_SMTP_URL=mailbox.url,
        KINKO_OUTBOX_POLL_SECONDS="0.1",
        KINKO_OVERDUE_SWEEP_SECONDS="0.2",
    ) as group:
        yield group


def test_every_message_is_sent_once_with_two_nodes(vault: Cluster, mailbox: Mailbox) -> None:
    t = uuid.uuid4().hex[:8]
    admin = vault.nodes[0].admin
    names = [f"mn-{k}-{t}" for k in ("drafter", "sup1", "sup2")]
    for name in names:
        resp = admin.http.post(
            "/api/v1/users", json={"name": name, "email": f"{name}@city.example.jp"}
        )
        assert resp.status_code == 201, resp.text
    admin.http.patch(f"/api/v1/users/{names[0]}", json={"roles": ["procurement"]})
    drafter = on_both(vault, names[0])
    sup1 = on_both(vault, names[1])
    case = drafter[0].create_case(f"MN-{t}", "二台での送信")["id"]
    for name in names[1:]:
        admin.set_member(case, name, ["supervisor"])
    doc = drafter[0].create_document(case, "specification", "仕様書.txt", b"spec")["id"]
    recipients = []
    for i in range(6):
        node = i % 2
        rcpt = f"vendor{i}-{t}@vendor.example.co.jp"
        recipients.append(rcpt)
        d = (
            drafter[node]
            .http.post(
                f"/api/v1/documents/{doc}/disclosures",
                json={
                    "recipient_name": f"業者 {i}",
                    "recipient_organization": "株式会社テスト",
                    "recipient_email": rcpt,
                    "reason": "確認",
                },
            )
            .json()
        )
        ok = sup1[1 - node].http.post(f"/api/v1/disclosures/{d['id']}/approve")
        assert ok.status_code == 200, ok.text
    mailbox.wait_for(lambda m: recipients[-1] in m.rcpt_tos, 30)
    time.sleep(2.0)  # both nodes keep polling meanwhile: nothing is sent again
    ids = Counter(
        str(m.message["Message-ID"])
        for m in mailbox.received
        if any(r.endswith(f"-{t}@vendor.example.co.jp") for r in m.rcpt_tos)
    )
    assert len(ids) == 6, ids
    assert set(ids.values()) == {1}, ids
    # The request notices to the supervisors went out once each too: 6 requests × 2.
    requested = [
        m
        for m in mailbox.received
        if m.rcpt_tos[0] in (f"{names[1]}@city.example.jp", f"{names[2]}@city.example.jp")
        and "情報提供の承認依頼" in str(m.message["Subject"])
    ]
    assert len(requested) == 12, len(requested)
    auditor = on_both(vault, f"mn-auditor-{t}", ["auditor"])[0]
    sent = list(all_events(auditor, action="mail.send", case_id=case))
    assert len(sent) == len({e["target"] for e in sent})


def test_an_overdue_report_is_told_once_by_two_nodes(vault: Cluster) -> None:
    t = uuid.uuid4().hex[:8]
    drafter = on_both(vault, f"mo-drafter-{t}", ["procurement"])
    sup = on_both(vault, f"mo-sup-{t}")
    case = drafter[0].create_case(f"MO-{t}", "期限切れ")["id"]
    vault.nodes[0].admin.set_member(case, f"mo-sup-{t}", ["supervisor"])
    resp = drafter[1].http.post(
        f"/api/v1/cases/{case}/contacts",
        json={
            "vendor": "株式会社遅延",
            "channel": "phone",
            "planned_at": (datetime.now(UTC) - timedelta(days=3)).isoformat(),
            "participants": [f"mo-drafter-{t}"],
            "agenda": "見積の受領",
        },
    )
    assert resp.status_code == 201, resp.text
    deadline = time.monotonic() + 15
    told: list[str] = []
    while time.monotonic() < deadline and not told:
        notes = sup[0].http.get("/api/v1/notifications").json()["notifications"]
        told = [n["subject_id"] for n in notes if n["kind"] == "contact.overdue"]
        time.sleep(0.2)
    time.sleep(1.5)
    notes = sup[1].http.get("/api/v1/notifications").json()["notifications"]
    assert [n["subject_id"] for n in notes if n["kind"] == "contact.overdue"] == [resp.json()["id"]]
