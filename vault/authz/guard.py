"""The guard: every allow/deny of the vault is decided here, and nowhere else.

Case-role permissions come from Casbin over ``policies/model.conf`` and ``policies/policy.csv``;
disclosure comes from ``policies/disclosure.csv``.  Routes and services never compare roles
themselves: they ask the guard, which raises ``NotFound`` or ``Forbidden`` in the order of
SPEC §4.3 (404 before 403 before 400), so a refusal never tells a non-member that something
exists.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import casbin

from vault.domain import ACTIONS, CASE_ROLES, CLASSES, GLOBAL_ROLES, STAGE_INDEX, DisclosureTable
from vault.errors import Forbidden, NotFound

OVERSEER_ROLES = frozenset({"admin", "auditor"})


@dataclass(frozen=True)
class Principal:
    """Who is asking.  ``user_id is None`` means an anonymous caller."""

    user_id: int | None
    name: str | None
    roles: frozenset[str] = frozenset()

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    @property
    def overseer(self) -> bool:
        """Admins and auditors see metadata everywhere and document content nowhere."""
        return bool(self.roles & OVERSEER_ROLES)


ANONYMOUS = Principal(user_id=None, name=None)


@dataclass(frozen=True)
class CaseView:
    """What one caller may do in one case at one instant; built once per request."""

    case_id: str
    stage: str
    roles: frozenset[str]
    overseer: bool
    permissions: frozenset[tuple[str, str]] = field(repr=False)

    @property
    def member(self) -> bool:
        return bool(self.roles)

    @property
    def visible(self) -> bool:
        return self.member or self.overseer

    def may(self, cls: str, action: str) -> bool:
        return (cls, action) in self.permissions


@dataclass(frozen=True)
class ContentGrant:
    """A permitted content read: which version, and whether a purpose is required."""

    version: int
    rule: int  # 1 = case role, 2 = disclosed final version
    purpose_required: bool


def _stage_in(stage: str, allowed: str) -> bool:
    return allowed == "*" or stage in allowed.split("|")


def _obj_match(requested: str, rule: str) -> bool:
    # The class wildcard must never grant an administrative action.
    return requested == rule or (rule == "*" and not requested.startswith("@"))


# Administrative objects and their actions, as the policy may name them.
ADMIN_OBJECTS = frozenset({"@users", "@members", "@cases", "@transitions", "@audit", "@reviews"})
ADMIN_ACTIONS = frozenset({"manage", "create", "read", "decide", "coverage"})
# Stage passed for administrative decisions, which no stage list names.
_NO_STAGE = "-"


class Guard:
    def __init__(self, policies_dir: Path) -> None:
        model = policies_dir / "model.conf"
        policy = policies_dir / "policy.csv"
        self.disclosure = DisclosureTable.load(policies_dir / "disclosure.csv")
        self._enforcer = casbin.Enforcer(str(model), str(policy))
        self._enforcer.add_function("stage_in", _stage_in)
        self._enforcer.add_function("obj_match", _obj_match)
        # pycasbin's enforcer is not documented as thread-safe; the permission table below is
        # computed under this lock once per (roles, stage) and then only read.
        self._lock = threading.Lock()
        self._check_policy_vocabulary()

    def _check_policy_vocabulary(self) -> None:
        """Refuse to start on a policy that names unknown roles, classes, actions or stages.

        A typo in an operator-edited policy would otherwise silently deny (or, with a wildcard,
        silently allow) something nobody intended.
        """
        for rule in self._enforcer.get_policy():
            role, cls, action, stages = rule
            problems = []
            if role not in CASE_ROLES and role not in GLOBAL_ROLES:
                problems.append(f"role {role!r}")
            if cls in ADMIN_OBJECTS:
                if action not in ADMIN_ACTIONS:
                    problems.append(f"action {action!r}")
            elif cls != "*" and cls not in CLASSES:
                problems.append(f"class {cls!r}")
            elif action not in ACTIONS:
                problems.append(f"action {action!r}")
            if stages != "*" and any(s not in STAGE_INDEX for s in stages.split("|")):
                problems.append(f"stages {stages!r}")
            if problems:
                raise ValueError(f"policy rule {rule}: unknown {', '.join(problems)}")

    # -- case-role permissions (rule 1) -------------------------------------------------------

    def permissions(self, roles: Iterable[str], stage: str) -> frozenset[tuple[str, str]]:
        return self._permissions(frozenset(roles), stage)

    @lru_cache(maxsize=4096)  # noqa: B019 - one guard lives as long as the process.
    def _permissions(self, roles: frozenset[str], stage: str) -> frozenset[tuple[str, str]]:
        allowed: set[tuple[str, str]] = set()
        with self._lock:
            for role in roles:
                for cls in CLASSES:
                    for action in ACTIONS:
                        if self._enforcer.enforce(role, cls, action, stage):
                            allowed.add((cls, action))
        return frozenset(allowed)

    def case_view(
        self, principal: Principal, case_id: str, stage: str, roles: Iterable[str]
    ) -> CaseView:
        role_set = frozenset(roles) if not principal.anonymous else frozenset()
        perms = self.permissions(role_set, stage)
        if principal.overseer:
            # Separation of duties: admin and auditor never read content, whatever case roles
            # they may also hold (SPEC §4.2).
            perms = frozenset(p for p in perms if p[1] != "read")
        return CaseView(
            case_id=case_id,
            stage=stage,
            roles=role_set,
            overseer=principal.overseer,
            permissions=perms,
        )

    # -- disclosure (rule 2) ------------------------------------------------------------------

    def disclosed(self, cls: str, stage: str, final_version: int | None) -> bool:
        return final_version is not None and self.disclosure.is_disclosed(cls, stage)

    # -- decisions ----------------------------------------------------------------------------

    def require_case(self, view: CaseView) -> None:
        """Case-level visibility: members, admin and auditor; everyone else gets 404."""
        if not view.visible:
            raise NotFound("case not found", code="case_not_found")

    # -- administrative actions ----------------------------------------------------------------

    def may(self, roles: Iterable[str], obj: str, action: str) -> bool:
        """Whether any of ``roles`` (global or case roles) permits an administrative action."""
        return self._may(frozenset(roles), obj, action)

    @lru_cache(maxsize=1024)  # noqa: B019 - one guard lives as long as the process.
    def _may(self, roles: frozenset[str], obj: str, action: str) -> bool:
        with self._lock:
            return any(self._enforcer.enforce(r, obj, action, _NO_STAGE) for r in roles)

    def require_global(
        self, principal: Principal, obj: str, action: str, *, message: str, code: str
    ) -> None:
        """An action decided by the caller's global roles alone (users, audit log, new cases)."""
        if not self.may(principal.roles, obj, action):
            raise Forbidden(message, code=code)

    def require_case_action(
        self, view: CaseView, principal: Principal, obj: str, action: str
    ) -> None:
        """An administrative action in one case: 404 for outsiders, then the policy decides."""
        self.require_case(view)
        if not self.may(view.roles | principal.roles, obj, action):
            raise Forbidden("your roles do not allow this in the case", code="not_supervisor")

    def require_write(self, view: CaseView, cls: str) -> None:
        self.require_case(view)
        if not view.may(cls, "write"):
            raise Forbidden(
                f"your roles do not allow writing {cls} documents at stage {view.stage}",
                code="write_not_permitted",
            )

    def document_visible(self, view: CaseView, cls: str, final_version: int | None) -> bool:
        """Whether the caller may know the document exists (else 404)."""
        return view.visible or self.disclosed(cls, view.stage, final_version)

    def metadata_scope(
        self, principal: Principal, view: CaseView, cls: str, final_version: int | None
    ) -> str:
        """``"full"`` (every version) or ``"final"`` (rule-2 readers); raises 404/403."""
        if not self.document_visible(view, cls, final_version):
            raise NotFound("document not found", code="document_not_found")
        if view.overseer or view.may(cls, "read"):
            return "full"
        if self.disclosed(cls, view.stage, final_version):
            return "final"
        raise Forbidden(
            f"your roles do not allow reading {cls} documents at stage {view.stage}",
            code="read_not_permitted",
        )

    def content_read(
        self,
        principal: Principal,
        view: CaseView,
        cls: str,
        latest_version: int,
        final_version: int | None,
        requested: int | None,
    ) -> ContentGrant:
        """Decide a content read, raising 404 → 403 in that order (400 for purpose comes later)."""
        disclosed = self.disclosed(cls, view.stage, final_version)
        if not (view.visible or disclosed):
            raise NotFound("document not found", code="document_not_found")
        if principal.overseer:
            raise Forbidden(
                "admin and auditor never read document content", code="content_not_permitted"
            )
        if view.may(cls, "read"):
            version = latest_version if requested is None else requested
            if not 1 <= version <= latest_version:
                raise NotFound("version not found", code="version_not_found")
            needs_purpose = not (disclosed and version == final_version)
            return ContentGrant(version=version, rule=1, purpose_required=needs_purpose)
        if disclosed and final_version is not None and requested in (None, final_version):
            return ContentGrant(version=final_version, rule=2, purpose_required=False)
        if view.member:
            raise Forbidden(
                f"your roles do not allow reading {cls} documents at stage {view.stage}",
                code="read_not_permitted",
            )
        # A non-member who may read only the disclosed final version learns nothing about drafts.
        raise NotFound("version not found", code="version_not_found")

    def can_see_evaluators(self, view: CaseView) -> bool:
        return view.overseer or view.may("evaluator_names", "read")
