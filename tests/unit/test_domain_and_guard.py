"""Domain validation, the disclosure table, and the guard's refusal of a broken policy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vault.authz import Guard, Principal
from vault.domain import (
    CLASSES,
    STAGES,
    DisclosureTable,
    DomainError,
    validate_case_number,
    validate_title,
)
from vault.errors import Forbidden, NotFound
from vault.settings import default_policies_dir


@pytest.mark.parametrize("number", ["R8-0042", "a", "A.b_c-1", "x" * 64])
def test_valid_case_numbers(number: str) -> None:
    assert validate_case_number(number) == number


@pytest.mark.parametrize("number", ["", "x" * 65, "R8/0042", "R8 0042", "番号", None, 42])
def test_invalid_case_numbers(number: object) -> None:
    with pytest.raises(DomainError):
        validate_case_number(number)


@pytest.mark.parametrize(
    "title", ["仕様書（案）.docx", "a", "x" * 255, "../../etc/passwd", "😀 %41"]
)
def test_valid_titles(title: str) -> None:
    assert validate_title(title) == title


@pytest.mark.parametrize("title", ["", "x" * 256, "a\nb", "tab\there", "nul\x00", "   ", "\x7f"])
def test_invalid_titles(title: str) -> None:
    with pytest.raises(DomainError):
        validate_title(title)


def test_shipped_disclosure_table_matches_the_contract() -> None:
    table = DisclosureTable.load(default_policies_dir() / "disclosure.csv")
    expected = {
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
    assert dict(table.disclosed_from) == expected
    assert table.is_disclosed("specification", "announced")
    assert not table.is_disclosed("specification", "review")
    assert table.is_disclosed("budget", "closed")
    assert not any(table.is_disclosed("proposal", s) for s in STAGES)


def _policies_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "policies"
    shutil.copytree(default_policies_dir(), dst)
    return dst


def test_policy_with_unknown_vocabulary_is_refused(tmp_path: Path) -> None:
    pol = _policies_copy(tmp_path)
    with (pol / "policy.csv").open("a") as fh:
        fh.write("p, drafter, specifcation, read, *\n")
    with pytest.raises(ValueError, match="specifcation"):
        Guard(pol)


def test_disclosure_table_missing_a_class_is_refused(tmp_path: Path) -> None:
    pol = _policies_copy(tmp_path)
    lines = (pol / "disclosure.csv").read_text().splitlines()
    (pol / "disclosure.csv").write_text("\n".join(ln for ln in lines if "budget" not in ln))
    with pytest.raises(ValueError, match="budget"):
        Guard(pol)


def test_operator_can_change_disclosure(tmp_path: Path) -> None:
    pol = _policies_copy(tmp_path)
    text = (pol / "disclosure.csv").read_text().replace("budget,awarded", "budget,opened")
    (pol / "disclosure.csv").write_text(text)
    guard = Guard(pol)
    assert guard.disclosed("budget", "opened", 1)
    assert not guard.disclosed("budget", "opened", None)


def test_overseers_never_read_content_even_with_a_case_role() -> None:
    guard = Guard(default_policies_dir())
    auditor = Principal(1, "kansa", frozenset({"auditor"}))
    view = guard.case_view(auditor, "c", "drafting", ["drafter"])
    with pytest.raises(Forbidden):
        guard.content_read(auditor, view, "specification", 1, None, None)
    # Metadata stays visible to them.
    assert guard.metadata_scope(auditor, view, "proposal", None) == "full"


def test_non_member_sees_404_and_member_403() -> None:
    guard = Guard(default_policies_dir())
    outsider = Principal(2, "x")
    view = guard.case_view(outsider, "c", "review", [])
    with pytest.raises(NotFound):
        guard.content_read(outsider, view, "specification", 2, None, None)
    reviewer = Principal(3, "r")
    view = guard.case_view(reviewer, "c", "review", ["reviewer"])
    with pytest.raises(Forbidden):
        guard.content_read(reviewer, view, "proposal", 2, None, None)
    grant = guard.content_read(reviewer, view, "specification", 2, None, None)
    assert grant.version == 2
    assert grant.purpose_required


def test_every_class_has_a_decision_for_every_role_and_stage() -> None:
    guard = Guard(default_policies_dir())
    for stage in STAGES:
        perms = guard.permissions(["drafter"], stage)
        assert {c for c, a in perms if a == "read"} == set(CLASSES)


def test_administrative_actions_come_from_the_policy() -> None:
    guard = Guard(default_policies_dir())
    assert guard.may(["admin"], "@users", "manage")
    assert guard.may(["admin"], "@members", "manage")
    assert not guard.may(["admin"], "@transitions", "manage")
    assert guard.may(["supervisor"], "@transitions", "manage")
    assert guard.may(["procurement"], "@cases", "create")
    assert guard.may(["auditor"], "@audit", "read")
    assert not guard.may(["admin"], "@audit", "read")
    # The document-class wildcard ("drafter reads every class") never grants an admin action.
    assert not guard.may(["drafter"], "@audit", "read")
    assert not guard.may(["drafter", "evaluator", "reviewer"], "@members", "manage")


def test_operator_can_change_administrative_rules(tmp_path: Path) -> None:
    pol = _policies_copy(tmp_path)
    with (pol / "policy.csv").open("a") as fh:
        fh.write("p, admin, @audit, read, *\n")
    assert Guard(pol).may(["admin"], "@audit", "read")
    with (pol / "policy.csv").open("a") as fh:
        fh.write("p, admin, @audit, delete, *\n")
    with pytest.raises(ValueError, match="delete"):
        Guard(pol)


def test_a_failure_after_the_allow_event_is_recorded(tmp_path: Path) -> None:
    from vault.audit.log import AuditLog
    from vault.audit.scope import AuditScope, RequestInfo
    from vault.db import AUDIT_MIGRATIONS, make_engine, upgrade
    from vault.errors import KinkoError

    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine, AUDIT_MIGRATIONS, "alembic_version_audit")
    audit = AuditLog(engine)
    info = RequestInfo(ip=None, user_agent=None, device=None, request_id="r1")

    def write_that_fails_after_allow() -> None:
        with AuditScope(audit, info, "tanaka", "document.write") as ev:
            ev.allow()
            raise RuntimeError("catalog commit failed")

    with pytest.raises(KinkoError):
        write_that_fails_after_allow()
    events, _ = audit.query()
    assert [(e["decision"], e["reason"], e["request_id"]) for e in events] == [
        ("allow", "ok", "r1"),
        ("deny", "failed_after_allow:internal_error", "r1"),
    ]
    engine.dispose()
