"""SPEC §4.1-§4.3 as one table: every role x class x stage x action, over real HTTP.

One server and one "world" serve every parametrization: for each of the nine stages there is a
case driven (forward only) to that stage, holding one document per class.  Every document has
v1 marked final and a later draft v2, so a reader allowed by rule 1 (case role) gets the latest
draft, while a reader allowed only by rule 2 (disclosure) gets the final v1.

The expected status of each cell is computed by ``expected_read``/``expected_write`` below,
which are written from the SPEC text alone and never call ``vault.authz``.

``technical_scores`` can only be written by an evaluator during ``evaluation`` (§4.1), so such a
document can only exist in cases that passed through ``evaluation``; in the earlier stages its
"write" cell is checked by trying to *create* one, and its "read" cell does not exist.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from clients import KinkoClient

# -- the SPEC, transcribed ----------------------------------------------------------------------

STAGES = (
    "drafting",
    "rfi",
    "review",
    "announced",
    "submission_closed",
    "evaluation",
    "opened",
    "awarded",
    "closed",
)
CLASSES = (
    "schedule",
    "specification",
    "evaluation_criteria",
    "technical_scores",
    "competition",
    "budget",
    "estimated_price",
    "evaluator_names",
    "proposal",
    "contact_record",
)
# §3: the stage from which the final version is public (None = never).
DISCLOSED_FROM: dict[str, str | None] = {
    "schedule": "announced",
    "specification": "announced",
    "evaluation_criteria": "announced",
    "technical_scores": "awarded",
    "competition": "awarded",
    "budget": "awarded",
    "estimated_price": "awarded",
    "evaluator_names": None,
    "proposal": None,
    "contact_record": None,
}
CASE_ROLES = ("drafter", "supervisor", "evaluator", "reviewer")
OVERSEERS = ("admin", "auditor")
ROLES = (*CASE_ROLES, *OVERSEERS, "outsider", "anonymous")
ACTIONS = ("read", "write")

# SPEC §2: anyone may read a disclosed final version, admins and auditors included ("cannot read
# document content" means non-disclosed content); issue 8 confirmed it for the public route, and
# rule 2 is the same rule on the member route.
OVERSEERS_READ_DISCLOSED = True

EVALUATOR_READS = {"specification", "evaluation_criteria", "proposal", "technical_scores"}
REVIEWER_READS = {"schedule", "specification", "evaluation_criteria", "budget", "estimated_price"}


def stage_index(stage: str) -> int:
    return STAGES.index(stage)


def disclosed(cls: str, stage: str) -> bool:
    start = DISCLOSED_FROM[cls]
    return start is not None and stage_index(stage) >= stage_index(start)


def rule1(role: str, cls: str, stage: str, action: str) -> bool:
    """§4.1 table; admin/auditor/outsider/anonymous hold no case role here."""
    if role in ("drafter", "supervisor"):
        if action == "read":
            return True
        return cls != "technical_scores" and stage != "closed"
    if role == "evaluator":
        if stage != "evaluation":
            return False
        return cls in EVALUATOR_READS if action == "read" else cls == "technical_scores"
    if role == "reviewer":
        return action == "read" and stage == "review" and cls in REVIEWER_READS
    return False


@dataclass(frozen=True)
class Expect:
    statuses: frozenset[int]
    served: str | None = None  # "latest" (rule 1) or "final" (rule 2) for a 200 read


def expected_read(role: str, cls: str, stage: str) -> Expect:
    # Rule 1: an unexpired case role that permits the read (admin/auditor never pass it).
    if role in CASE_ROLES and rule1(role, cls, stage, "read"):
        return Expect(frozenset({200}), "latest")
    # Rule 2: the final version of a disclosed document (every document here has a final).
    if disclosed(cls, stage) and (role not in OVERSEERS or OVERSEERS_READ_DISCLOSED):
        return Expect(frozenset({200}), "final")
    # §4.3: members (and admin/auditor, who see every case) get 403, everybody else 404.
    if role in CASE_ROLES or role in OVERSEERS:
        return Expect(frozenset({403}))
    return Expect(frozenset({404}))


def expected_write(role: str, cls: str, stage: str) -> Expect:
    if role == "anonymous":
        return Expect(frozenset({401}))  # writes are for signed-in writers only
    if role in CASE_ROLES and rule1(role, cls, stage, "write"):
        return Expect(frozenset({201}))
    if role in CASE_ROLES or role in OVERSEERS:
        return Expect(frozenset({403}))
    if disclosed(cls, stage):
        # SPEC is silent on a non-member writing a document it can see because it is public:
        # 403 (not permitted) or 404 (the case stays invisible) both reveal nothing.
        return Expect(frozenset({403, 404}))
    return Expect(frozenset({404}))


def technical_scores_exists(cls: str, stage: str) -> bool:
    """Whether a document of ``cls`` can exist in a case now at ``stage``."""
    return cls != "technical_scores" or stage_index(stage) >= stage_index("evaluation")


def cells() -> Iterator[tuple[str, str, str, str]]:
    for stage in STAGES:
        for cls in CLASSES:
            for role in ROLES:
                for action in ACTIONS:
                    if action == "read" and not technical_scores_exists(cls, stage):
                        continue  # no such document can exist: nothing to read
                    yield stage, cls, role, action


# -- the world ----------------------------------------------------------------------------------

PURPOSE = {"X-Access-Purpose": "permission%20table%20check"}


def v1_bytes(stage: str, cls: str) -> bytes:
    return f"{cls} in a {stage} case: version 1 (final)".encode()


def v2_bytes(stage: str, cls: str) -> bytes:
    return f"{cls} in a {stage} case: version 2 (draft)".encode()


@dataclass
class World:
    clients: dict[str, KinkoClient]
    cases: dict[str, str] = field(default_factory=dict)  # stage -> case id
    docs: dict[tuple[str, str], str] = field(default_factory=dict)  # (stage, class) -> doc id


@pytest.fixture(scope="module")
def world(server) -> World:
    clients = {
        "drafter": server.user("pt-drafter", ["procurement"]),
        "supervisor": server.user("pt-supervisor"),
        "evaluator": server.user("pt-evaluator"),
        "reviewer": server.user("pt-reviewer"),
        "admin": server.admin,
        "auditor": server.user("pt-auditor", ["auditor"]),
        "outsider": server.user("pt-outsider", ["procurement"]),
        "anonymous": server.client(None),
    }
    w = World(clients)
    drafter, sup, ev = clients["drafter"], clients["supervisor"], clients["evaluator"]

    def add(case_id: str, stage: str, cls: str, writer: KinkoClient) -> None:
        doc = writer.create_document(case_id, cls, f"{cls} / {stage}", v1_bytes(stage, cls))
        assert doc["version"] == 1
        writer.finalize(doc["id"], 1)
        assert writer.put_content(doc["id"], v2_bytes(stage, cls))["version"] == 2
        w.docs[(stage, cls)] = doc["id"]

    for stage in STAGES:
        case_id = drafter.create_case(f"PT-{stage}", f"permission table at {stage}")["id"]
        w.cases[stage] = case_id
        server.admin.set_member(case_id, "pt-supervisor", ["supervisor"])
        server.admin.set_member(case_id, "pt-evaluator", ["evaluator"])
        server.admin.set_member(case_id, "pt-reviewer", ["reviewer"])
        for cls in CLASSES:
            if cls != "technical_scores":
                add(case_id, stage, cls, drafter)
        current = "drafting"
        if technical_scores_exists("technical_scores", stage):
            sup.transition(case_id, "evaluation")
            current = "evaluation"
            add(case_id, stage, "technical_scores", ev)
        if stage != current:
            sup.transition(case_id, stage)
        assert sup.case(case_id)["stage"] == stage
    return w


# -- the table ----------------------------------------------------------------------------------


def _check_error_body(resp: httpx.Response) -> None:
    body = resp.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)


@pytest.mark.parametrize(
    ("stage", "cls", "role", "action"),
    list(cells()),
    ids=["-".join(c) for c in cells()],
)
def test_permission_table(world: World, stage: str, cls: str, role: str, action: str) -> None:
    client = world.clients[role]
    if action == "read":
        doc_id = world.docs[(stage, cls)]
        want = expected_read(role, cls, stage)
        resp = client.http.get(f"/api/v1/documents/{doc_id}/content", headers=PURPOSE)
        assert resp.status_code in want.statuses, (resp.status_code, resp.text)
        if resp.status_code != 200:
            _check_error_body(resp)
            return
        version = int(resp.headers["X-Kinko-Version"])
        assert resp.headers["ETag"] == f'"{version}"'
        assert resp.headers["X-Kinko-Sha256"] == hashlib.sha256(resp.content).hexdigest()
        if want.served == "final":
            # Rule 2 serves the final version, never a draft.
            assert version == 1
            assert resp.content == v1_bytes(stage, cls)
        else:
            # Rule 1 serves the latest version, which is a draft (v2 or a later table write).
            assert version >= 2
            if version == 2:
                assert resp.content == v2_bytes(stage, cls)
        return

    want = expected_write(role, cls, stage)
    body = f"{role} writes {cls} at {stage}".encode()
    if technical_scores_exists(cls, stage):
        doc_id = world.docs[(stage, cls)]
        resp = client.http.put(f"/api/v1/documents/{doc_id}/content", content=body)
    else:
        resp = client.http.post(
            f"/api/v1/cases/{world.cases[stage]}/documents",
            params={"class": cls},
            headers={"X-Kinko-Title": "scores"},
            content=body,
        )
    assert resp.status_code in want.statuses, (resp.status_code, resp.text)
    if resp.status_code == 201:
        assert resp.json()["version"] >= (1 if not technical_scores_exists(cls, stage) else 3)
    else:
        _check_error_body(resp)
