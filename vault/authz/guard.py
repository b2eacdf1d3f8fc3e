"""The guard: every allow/deny of the vault is decided here, and nowhere else.

Case-role permissions come from Casbin over ``policies/model.conf`` and ``policies/policy.csv``;
disclosure comes from ``policies/disclosure.csv``.  Routes and services never compare roles
themselves: they ask the guard, which raises ``NotFound`` or ``Forbidden`` in the order of
SPEC §4.3 (404 before 403 before 400), so a refusal never tells a non-member that something
exists.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import casbin

from vault.domain import ACTIONS, CASE_ROLES, CLASSES, GLOBAL_ROLES, STAGE_INDEX, DisclosureTable
from vault.errors import Conflict, Forbidden, NotFound

OVERSEER_ROLES = frozenset({"admin", "auditor"})


@dataclass(frozen=True)
class Principal:
    """Who is asking.  ``user_id is None`` means an anonymous caller."""

    user_id: int | None
    name: str | None
    roles: frozenset[str] = frozenset()
    # Who minted the token in use, when it was not its holder (see RequestInfo.token_issuer).
    token_issuer: str | None = None
    # The id of the token in use (None for anonymous callers and internal principals).
    token_id: str | None = None

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
ADMIN_OBJECTS = frozenset(
    {
        "@users",
        "@members",
        "@cases",
        "@transitions",
        "@audit",
        "@reviews",
        "@access",
        "@vendor_contact",
        "@disclosures",
        "@contacts",
    }
)
ADMIN_ACTIONS = frozenset(
    {"manage", "create", "read", "decide", "coverage", "open", "approve", "list", "report"}
)
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
        # Names the rules in force: answers cached by clients (the sync manifest's ETag) carry
        # it, so a changed policy is never mistaken for an unchanged answer.
        digest = hashlib.sha256()
        for path in (model, policy, policies_dir / "disclosure.csv"):
            digest.update(path.read_bytes() + b"\0")
        self.fingerprint = digest.hexdigest()

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

    # Refusals say what was refused, never which class or stage made it so: a member who may
    # not list a document must not learn its class or the case's stage from the message.
    _READ_REFUSED = "your roles in this case do not allow reading this document now"
    _WRITE_REFUSED = "your roles in this case do not allow this write now"

    def require_case(self, view: CaseView) -> None:
        """Case-level visibility: members, admin and auditor; everyone else gets 404."""
        if not view.visible:
            raise NotFound("case not found", code="case_not_found")

    def require_case_found(self, view: CaseView | None) -> CaseView:
        """``view`` is None for a case that does not exist: the same 404 as a hidden one."""
        if view is None or not view.visible:
            raise NotFound("case not found", code="case_not_found")
        return view

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

    def require_admin(self, principal: Principal) -> None:
        self.require_global(
            principal,
            "@users",
            "manage",
            message="only an admin may manage users and tokens",
            code="admin_required",
        )

    def require_audit_reader(self, principal: Principal) -> None:
        self.require_global(
            principal,
            "@audit",
            "read",
            message="only auditors may use the audit log",
            code="auditor_required",
        )

    def require_case_creator(self, principal: Principal) -> None:
        self.require_global(
            principal,
            "@cases",
            "create",
            message="only procurement staff may create cases",
            code="procurement_required",
        )

    def require_case_action(
        self, view: CaseView, principal: Principal, obj: str, action: str
    ) -> None:
        """An administrative action in one case: 404 for outsiders, then the policy decides."""
        self.require_case(view)
        if not self.may(view.roles | principal.roles, obj, action):
            raise Forbidden("your roles do not allow this in the case", code="not_supervisor")

    # -- access review -------------------------------------------------------------------------

    def confidentiality(
        self, cls: str, stage: str, final_version: int | None
    ) -> tuple[str, str | None]:
        """How secret a document is now, by rule 2: ("disclosed", None) when its final
        version is public at ``stage``; ("until", the stage it becomes public from); or
        ("forever", None) for a class that is never disclosed."""
        start = self.disclosure.disclosed_from.get(cls)
        if start is None:
            return "forever", None
        if final_version is not None and self.disclosure.is_disclosed(cls, stage):
            return "disclosed", None
        return "until", start

    def menu(self, principal: Principal, supervises: bool) -> frozenset[str]:
        """The areas of the web interface to offer the caller (``supervises``: whether any
        unexpired case role of theirs passes ``reviews_in``).  Offering is not allowing: each
        page still asks the guard for what it does."""
        areas = {"cases", "public", "me"} if not principal.anonymous else {"public"}
        if self.may(principal.roles, "@users", "manage"):
            areas.add("users")
        if self.may(principal.roles, "@audit", "read"):
            areas.add("audit")
        if supervises or self.reviews_everywhere(principal):
            areas.add("reviews")
        if supervises:
            # The supervisor's inbox: disclosures and vendor contacts waiting for them.
            areas.add("inbox")
        if not principal.anonymous:
            areas.add("notifications")
        if self.may(principal.roles, "@cases", "create"):
            areas.add("new_case")
        return frozenset(areas)

    def reviews_everywhere(self, principal: Principal) -> bool:
        """Whether the caller's global roles let them review reads in every case (auditors)."""
        return self.may(principal.roles, "@reviews", "decide")

    def reviews_in(self, case_roles: Iterable[str]) -> bool:
        """Whether unexpired case roles let their holder review the case's reads (supervisors)."""
        return self.may(case_roles, "@reviews", "decide")

    def review_scope(self, principal: Principal, cases: set[str]) -> set[str] | None:
        """None for an auditor (every case), else ``cases`` (the supervised ones); 403 if none.

        ``cases`` are the cases whose unexpired roles pass ``reviews_in``.
        """
        if self.reviews_everywhere(principal):
            return None
        if not cases:
            raise Forbidden(
                "only a case supervisor or an auditor may review reads", code="reviewer_required"
            )
        return cases

    def require_reviewer(
        self,
        principal: Principal,
        view: CaseView | None,
        reader: str | None,
        reader_token_issuer: str | None = None,
    ) -> None:
        """Decide who may review one read: never the reader (four eyes).

        Order of SPEC §4.3: a non-member learns nothing (404); a member who is not a supervisor,
        or an admin (who sees every case but reviews none), is refused (403).
        """
        if not self.reviews_everywhere(principal):
            if view is None or not view.visible:
                raise NotFound("review item not found", code="review_not_found")
            if not self.reviews_in(view.roles):
                raise Forbidden(
                    "only a supervisor of the case or an auditor may review its reads",
                    code="reviewer_required",
                )
        if self.own_read(principal, reader, reader_token_issuer):
            raise Forbidden("nobody may review their own read", code="own_read")

    @staticmethod
    def own_read(principal: Principal, reader: str | None, reader_token_issuer: str | None) -> bool:
        """Whether a read counts as the reviewer's own (four eyes, SPEC §6).

        It does when the reviewer made it, when it was made through a token the reviewer
        issued (a puppet), or when the reviewer acts through a token the reader issued.  Two
        tokens minted by one third person are not refused here (decisions stay as the issue
        on puppet tokens asks); both the read and the decision then carry that issuer's mark.
        """
        if principal.name is not None and principal.name in (reader, reader_token_issuer):
            return True
        return principal.token_issuer is not None and principal.token_issuer == reader

    def require_coverage_reader(self, principal: Principal) -> None:
        self.require_global(
            principal,
            "@reviews",
            "coverage",
            message="only auditors see review coverage",
            code="auditor_required",
        )

    # -- documents -----------------------------------------------------------------------------

    def writable_classes(self, view: CaseView) -> list[str]:
        """The classes the caller may write in the case right now (for the sync manifest)."""
        return [c for c in CLASSES if view.may(c, "write")]

    def case_abilities(self, principal: Principal, view: CaseView) -> dict[str, object]:
        """What the caller may do in the case now, for a page to offer only usable forms:
        ``transitions`` (schedule and cancel), ``members`` (add, change, remove) and
        ``write`` (the classes of new documents).  The same decisions as
        ``require_case_action`` and ``require_write``, answered instead of raised."""
        roles = view.roles | principal.roles
        return {
            "transitions": view.visible and self.may(roles, "@transitions", "manage"),
            "members": view.visible and self.may(roles, "@members", "manage"),
            "write": self.writable_classes(view) if view.visible else [],
            # The vendor-contact register: listed by drafters, supervisors and auditors;
            # reported into by drafters and supervisors.
            "contacts": view.visible
            and (
                (view.member and self.lists_contacts_in(view.roles))
                or self.contact_list_everywhere(principal)
            ),
            "report_contacts": view.member and self.may(view.roles, "@contacts", "report"),
        }

    def sees_every_case(self, principal: Principal) -> bool:
        """Admins and auditors list every case (metadata only); others their own."""
        return principal.overseer

    def may_write(self, view: CaseView, cls: str) -> bool:
        """``require_write`` answered instead of raised (a page offering its forms)."""
        return view.visible and view.may(cls, "write")

    def require_write(self, view: CaseView, cls: str) -> None:
        self.require_case(view)
        if not self.may_write(view, cls):
            raise Forbidden(self._WRITE_REFUSED, code="write_not_permitted")

    def document_visible(self, view: CaseView, cls: str, final_version: int | None) -> bool:
        """Whether the caller may know the document exists (else 404)."""
        return view.visible or self.disclosed(cls, view.stage, final_version)

    def require_document(
        self, view: CaseView | None, cls: str | None, final_version: int | None
    ) -> CaseView:
        """404 for a document that does not exist (``view`` None) or that the caller may not
        know of; both paths end in the same refusal after the same lookups."""
        if view is None or cls is None or not self.document_visible(view, cls, final_version):
            raise NotFound("document not found", code="document_not_found")
        return view

    def listing_scope(self, view: CaseView, cls: str, final_version: int | None) -> str | None:
        """How a document appears in a listing: ``"full"``, ``"final"`` (rule 2) or not at all."""
        if view.overseer or view.may(cls, "read"):
            return "full"
        if self.disclosed(cls, view.stage, final_version):
            return "final"
        return None

    def listing_scopes(self, view: CaseView) -> Callable[[str, int | None], str | None]:
        """``listing_scope`` for many documents of one case: decided once per (class, has a
        final version), which is all the decision looks at besides the view."""
        memo: dict[tuple[str, bool], str | None] = {}

        def scope(cls: str, final_version: int | None) -> str | None:
            decided = (cls, final_version is None)
            if decided not in memo:
                memo[decided] = self.listing_scope(view, cls, final_version)
            return memo[decided]

        return scope

    def title_visible(self, view: CaseView, cls: str, final_version: int | None) -> bool:
        """Whether the caller may see a document's title, which is metadata: its readers,
        anyone for a disclosed final version, and admin/auditor everywhere (SPEC §2, §4.3).

        Used where a title is shown beside something else (a review item), so it answers
        rather than refuses.
        """
        return self.listing_scope(view, cls, final_version) is not None

    def metadata_scope(
        self, principal: Principal, view: CaseView, cls: str, final_version: int | None
    ) -> str:
        """``"full"`` (every version) or ``"final"`` (rule-2 readers); raises 404/403."""
        if not self.document_visible(view, cls, final_version):
            raise NotFound("document not found", code="document_not_found")
        scope = self.listing_scope(view, cls, final_version)
        if scope is None:
            raise Forbidden(self._READ_REFUSED, code="read_not_permitted")
        return scope

    def public_read(self, view: CaseView, cls: str, final_version: int | None) -> ContentGrant:
        """The public route: the final version of a disclosed document, to anyone, else 404.

        Disclosed is public (SPEC §2), so admins and auditors read it here too; such a read
        needs no purpose and opens no access review.
        """
        if final_version is None or not self.disclosed(cls, view.stage, final_version):
            raise NotFound("document not found", code="document_not_found")
        return ContentGrant(version=final_version, rule=2, purpose_required=False)

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
        rule2 = disclosed and final_version is not None and requested in (None, final_version)
        if principal.overseer:
            # Separation of duties: admin and auditor never read non-disclosed content; a
            # disclosed final version is public, so they may read that one (SPEC §2).
            if rule2 and final_version is not None:
                return ContentGrant(version=final_version, rule=2, purpose_required=False)
            raise Forbidden(
                "admin and auditor never read non-disclosed document content",
                code="content_not_permitted",
            )
        if view.may(cls, "read"):
            version = latest_version if requested is None else requested
            if not 1 <= version <= latest_version:
                raise NotFound("version not found", code="version_not_found")
            needs_purpose = not (disclosed and version == final_version)
            return ContentGrant(version=version, rule=1, purpose_required=needs_purpose)
        if rule2 and final_version is not None:
            return ContentGrant(version=final_version, rule=2, purpose_required=False)
        if view.member:
            raise Forbidden(self._READ_REFUSED, code="read_not_permitted")
        # A non-member who may read only the disclosed final version learns nothing about drafts.
        raise NotFound("version not found", code="version_not_found")

    def read_grant(
        self,
        principal: Principal,
        view: CaseView,
        cls: str,
        latest_version: int,
        final_version: int | None,
        requested: int | None = None,
    ) -> ContentGrant | None:
        """``content_read`` as a value: None where it refuses (``requested`` None: the version
        served by default).

        This is how the access overview asks "may this member read it?" of every member at
        every instant it reports: through the one decision a real read goes through, never a
        copy of its rule.
        """
        try:
            return self.content_read(principal, view, cls, latest_version, final_version, requested)
        except (NotFound, Forbidden):
            return None

    def require_access_overview(self, principal: Principal, view: CaseView) -> None:
        """Who may see who can read a document: admin, auditor and the case's supervisors.

        ``view`` comes from ``require_document``, so whoever may not know of the document has
        already been answered 404; a member (or anyone, for a disclosed document) gets 403.
        """
        if not self.may(view.roles | principal.roles, "@access", "read"):
            raise Forbidden(
                "your roles do not allow seeing who may read this document",
                code="access_overview_not_permitted",
            )

    def can_see_evaluators(self, view: CaseView) -> bool:
        return view.overseer or view.may("evaluator_names", "read")

    # -- vendor contact: disclosures and the contact register (issue 12) ----------------------

    @lru_cache(maxsize=64)  # noqa: B019 - one guard lives as long as the process.
    def vendor_contact_open(self, stage: str) -> bool:
        """Whether vendors may be contacted at ``stage``: some case role of the policy opens
        ``@vendor_contact`` there.  From the review request (審査依頼) on, none does."""
        with self._lock:
            return any(
                self._enforcer.enforce(role, "@vendor_contact", "open", stage)
                for role in CASE_ROLES
            )

    def require_vendor_contact_open(self, stage: str) -> None:
        if not self.vendor_contact_open(stage):
            raise Conflict(
                "vendor contact is prohibited from the review request (審査依頼) on",
                code="contact_prohibited",
            )

    def require_not_public(self, cls: str, stage: str, final_version: int | None) -> None:
        """A document whose final version is public already needs no disclosure: 409."""
        if self.disclosed(cls, stage, final_version):
            raise Conflict(
                "the document is public already: anyone may download it", code="already_public"
            )

    def may_request_disclosure(
        self,
        principal: Principal,
        view: CaseView,
        cls: str,
        latest_version: int,
        final_version: int | None,
    ) -> bool:
        """Whether a page may offer the disclosure request form: the same decisions as the
        request itself (a rule-1 read, not public yet, vendor contact open), answered."""
        grant = self.read_grant(principal, view, cls, latest_version, final_version)
        return (
            grant is not None
            and grant.rule == 1
            and not self.disclosed(cls, view.stage, final_version)
            and self.vendor_contact_open(view.stage)
        )

    def supervises(self, view: CaseView, principal: Principal, obj: str) -> bool:
        """Whether the caller's roles in the case let them approve ``obj`` (disclosures,
        contacts) there."""
        # Admins and auditors decide nothing in a case (separation of duties), whatever case
        # roles they also hold.
        return view.member and not principal.overseer and self.may(view.roles, obj, "approve")

    def require_approver(
        self,
        principal: Principal,
        view: CaseView | None,
        obj: str,
        requester: str | None,
        requester_issuer: str | None,
        *,
        missing: NotFound,
    ) -> CaseView:
        """A decision on someone's request (approve, reject, acknowledge): a supervisor of
        the case who is not the requester (four eyes).  404 for outsiders, then 403."""
        if view is None or not view.visible:
            raise missing
        if not self.supervises(view, principal, obj):
            raise Forbidden(
                "only a supervisor of the case may decide this", code="supervisor_required"
            )
        if self.own_read(principal, requester, requester_issuer):
            raise Forbidden("nobody may approve their own request", code="own_request")
        return view

    def require_disclosure_reader(
        self, principal: Principal, view: CaseView | None, *, missing: NotFound
    ) -> CaseView:
        """Who may see a case's disclosures: members who may read its documents' class is
        checked per item by the service; here, members and auditors (admins: 404 → 403)."""
        if view is None or not view.visible:
            raise missing
        if not view.member and not self.may(principal.roles, "@disclosures", "list"):
            raise Forbidden(
                "your roles do not allow seeing this case's disclosures",
                code="disclosures_not_permitted",
            )
        return view

    def require_contact_reporter(self, view: CaseView) -> None:
        self.require_case(view)
        if not self.may(view.roles, "@contacts", "report"):
            raise Forbidden(
                "only a drafter or supervisor of the case may report vendor contacts",
                code="reporter_required",
            )

    def contact_list_everywhere(self, principal: Principal) -> bool:
        return self.may(principal.roles, "@contacts", "list")

    def lists_contacts_in(self, case_roles: Iterable[str]) -> bool:
        return self.may(case_roles, "@contacts", "list")

    def contact_text_visible(self, view: CaseView) -> bool:
        """Contact records are class ``contact_record``: their text (vendor, agenda,
        justification, summary) is read as that class allows, which admins and auditors
        never pass (their views carry no read permission)."""
        return view.may("contact_record", "read")

    def require_contact_reader(
        self, principal: Principal, view: CaseView | None, *, missing: NotFound
    ) -> CaseView:
        """One contact: members who may read its text, and auditors (without the text)."""
        if view is None or not view.visible:
            raise missing
        if not (self.contact_text_visible(view) or self.contact_list_everywhere(principal)):
            raise Forbidden(
                "your roles do not allow reading this case's contact records",
                code="contact_not_permitted",
            )
        return view
