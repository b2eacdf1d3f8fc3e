"""Response shapes of the JSON API (request bodies: ``vault.services.schemas``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DocumentItem(BaseModel):
    id: str
    case_id: str
    class_: str = Field(alias="class")
    title: str
    latest_version: int
    final_version: int | None


class DocumentList(BaseModel):
    documents: list[DocumentItem]


class PublicDocumentItem(DocumentItem):
    case_number: str


class PublicDocumentList(BaseModel):
    documents: list[PublicDocumentItem]


class SyncCase(BaseModel):
    """One of the caller's cases (unexpired membership) as the sync client mirrors it."""

    id: str
    number: str
    stage: str = Field(description="The stage in force at generated_at.")
    writable_classes: list[str] = Field(
        description="Classes the caller may write (create, new version, mark final) right now."
    )


class SyncDocument(BaseModel):
    """A document the caller may read right now, at the version GET .../content serves."""

    id: str
    case_id: str
    case_number: str
    class_: str = Field(alias="class")
    title: str
    version: int = Field(
        description="The latest version (rule 1), or the final version (rule 2: drafts unnamed)."
    )
    size: int = Field(description="Plaintext size in bytes of that version.")
    sha256: str = Field(description="Lowercase hex SHA-256 of that version's plaintext.")
    final_version: int | None
    rule: Literal[1, 2] = Field(
        description="1: readable through a case role; 2: only as a disclosed final version."
    )


class SyncManifest(BaseModel):
    """What a workstation sync client must mirror; ETag = SHA-256 of it minus generated_at."""

    generated_at: str
    cases: list[SyncCase]
    documents: list[SyncDocument]


# -- the rest of the API's JSON answers ---------------------------------------------------------
#
# These document the answers in /openapi.json; routes return plain dicts built by the services
# and are not re-validated on the way out (tests/api/test_openapi.py checks real answers
# against these schemas instead).  Times are RFC 3339 strings in UTC.


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str] = Field(
        description="Each store this node needs (catalog, audit, blobs) and its answer: ok, "
        "unavailable or timeout."
    )


class MyMembership(BaseModel):
    case_id: str
    case_number: str
    roles: list[str]
    expires_at: str | None
    active: bool = Field(description="False once the membership has expired.")


class Me(BaseModel):
    name: str
    display_name: str | None
    email: str | None
    roles: list[str]
    memberships: list[MyMembership]


class NotificationItem(BaseModel):
    id: int
    kind: str = Field(description="e.g. token.issued_for_user")
    user: str | None
    by: str | None
    token_id: str | None
    created_at: str | None


class NotificationList(BaseModel):
    notifications: list[NotificationItem]


class TokenIssued(BaseModel):
    token: str = Field(description="The secret, shown only in this answer; only a hash is kept.")
    id: str
    expires_at: str | None
    issued_by: str | None = Field(description="Who minted it, when not its holder.")


class TokenInfo(BaseModel):
    """A token as its holder or an admin sees it: never the secret or its hash."""

    id: str
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None = Field(description="When it last authenticated (to the minute).")
    active: bool
    issued_by: str | None


class TokenList(BaseModel):
    tokens: list[TokenInfo]


class UserCreated(BaseModel):
    name: str
    display_name: str | None
    email: str | None = Field(description="Shown only to admins and to the user.")
    roles: list[str]
    disabled: bool


class UserOut(UserCreated):
    created_at: str | None
    password_set: bool = Field(
        description="Whether the user has set a password (the hash is never shown)."
    )


class UserList(BaseModel):
    users: list[UserOut]


class UserMembership(MyMembership):
    active: bool = Field(description="False once expired, and while the user is disabled.")
    granted_by: str | None


class UserDetail(UserOut):
    memberships: list[UserMembership]


class UserState(BaseModel):
    name: str
    roles: list[str]
    disabled: bool


class InvitationIssued(BaseModel):
    url: str = Field(
        description="The one-time link (shown only now); it opens the page where "
        "the user sets a password."
    )
    expires_at: str


class CaseSummary(BaseModel):
    id: str
    number: str
    title: str | None = Field(description="None once the case was crypto-shredded.")
    stage: str
    roles: list[str] | None = Field(
        default=None,
        description="The caller's own unexpired case roles in the case (empty for an admin or "
        "auditor who holds none).",
    )
    shredded_at: str | None = Field(default=None, description="Only on a shredded case.")


class CaseList(BaseModel):
    cases: list[CaseSummary]


class TransitionItem(BaseModel):
    id: str
    stage: str
    at: str
    by: str | None


class MemberItem(BaseModel):
    name: str | None
    roles: list[str]
    expires_at: str | None
    granted_by: str | None


class CaseDetail(CaseSummary):
    transitions: list[TransitionItem]
    members: list[MemberItem]


class TransitionCreated(BaseModel):
    id: str
    stage: str
    at: str | None


class DocumentCreated(BaseModel):
    id: str
    class_: str = Field(alias="class")
    title: str
    version: int


class VersionCreated(BaseModel):
    version: int


class VersionItem(BaseModel):
    version: int
    size: int
    sha256: str
    created_at: str | None
    created_by: str | None = Field(description="Unnamed when the author is a secret evaluator.")
    final: bool


class DocumentMeta(DocumentItem):
    versions: list[VersionItem]


class FinalSetResult(BaseModel):
    id: str
    final_version: int
    previous_final_version: int | None


class Reader(BaseModel):
    name: str
    roles: list[str] = Field(description="The case roles that each alone give the read.")
    rule: Literal[1, 2] = Field(
        description="1: every version through a case role; 2: only the disclosed final version."
    )
    expires_at: str | None


class AccessAtTransition(BaseModel):
    id: str
    stage: str = Field(description="The stage in force from `at`.")
    at: str
    public: bool
    readers: list[Reader]
    gains: list[str] = Field(description="Members who may read then but not now.")
    loses: list[str] = Field(description="Members who may read now but not then.")


class DocumentAccess(BaseModel):
    document_id: str
    case_id: str
    class_: str = Field(alias="class")
    at: str = Field(description="The instant the answer describes (now).")
    stage: str
    final_version: int | None
    public: bool = Field(description="Whether anyone may read the final version now.")
    readers: list[Reader]
    next_transition: AccessAtTransition | None


class EventClient(BaseModel):
    ip: str | None
    user_agent: str | None
    device: str | None
    token_issuer: str | None = Field(default=None, description="Only on marked tokens.")


class AuditEventOut(BaseModel):
    """One audit event (SPEC §5); events may carry further fields in later versions."""

    model_config = ConfigDict(extra="allow")
    seq: int
    time: str
    actor: str | None
    action: str
    decision: Literal["allow", "deny"]
    reason: str | None
    case_id: str | None
    document_id: str | None
    version: int | None
    class_: str | None = Field(alias="class")
    purpose: str | None
    target: str | None = None
    client: EventClient
    request_id: str


class AuditEvents(BaseModel):
    events: list[AuditEventOut]
    next_cursor: str | None


class InclusionProof(BaseModel):
    leaf_index: int
    tree_size: int
    hashes: list[str] = Field(description="Base64 SHA-256 hashes.")


class ConsistencyProof(BaseModel):
    old_size: int
    new_size: int
    hashes: list[str] = Field(description="Base64 SHA-256 hashes.")


class ReviewItemOut(BaseModel):
    seq: int = Field(description="The sequence number of the item's first read.")
    actor: str | None
    case_id: str | None
    document_id: str | None
    purpose: str | None
    time: str
    status: Literal["pending", "confirmed", "flagged"]
    reads: int
    token_issuer: str | None
    membership_granted_by: str | None = None


class ReviewList(BaseModel):
    items: list[ReviewItemOut]


class ReviewDecided(ReviewItemOut):
    reviewer: str | None
    verdict: str | None
    note: str | None
    decided_at: str | None


class ReviewReport(BaseModel):
    date: str
    timezone: str
    items: list[ReviewDecided]


class ReviewCoverage(BaseModel):
    reads: int
    reviewed: int
    share_reviewed: float | None
    flagged: int
    unreviewed_older: int


class DisclosureOut(BaseModel):
    id: str
    status: str = Field(
        description="requested, approved, rejected, revoked, expired, used_up, or closed "
        "(the case reached the review request)."
    )
    case_id: str
    document_id: str
    version: int
    title: str | None
    recipient_name: str
    recipient_organization: str
    recipient_email: str
    reason: str
    note: str | None
    expires_at: str | None
    max_downloads: int
    downloads: int
    requested_by: str | None
    requested_at: str | None
    decided_by: str | None
    decided_at: str | None
    revoked_by: str | None
    revoked_at: str | None
    last_download_at: str | None


class DisclosureApproved(DisclosureOut):
    link: str = Field(
        description="KINKO_PUBLIC_URL + /s/<token>; shown only in this answer (and mailed to "
        "the recipient when SMTP is set up): only a hash of the token is kept."
    )


class DisclosureList(BaseModel):
    disclosures: list[DisclosureOut]


class ContactOut(BaseModel):
    id: str
    case_id: str
    status: str = Field(description="pending_approval, planned or reported.")
    overdue: bool = Field(description="Planned, and not reported 2 days after planned_at.")
    text_visible: bool = Field(
        description="Whether the caller may read the record's text (class contact_record); "
        "auditors see the register without it: vendor, agenda, justification and summary "
        "are then null."
    )
    vendor: str | None
    channel: str
    planned_at: str | None
    participants: list[str]
    agenda: str | None
    minor: bool
    urgent: bool
    justification: str | None
    reported_by: str | None
    created_at: str | None
    approved_by: str | None
    approved_at: str | None
    acknowledged_by: str | None
    acknowledged_at: str | None
    reported_at: str | None
    summary: str | None
    information_provided: bool | None
    disclosures: list[str]
    report_acknowledged_by: str | None
    report_acknowledged_at: str | None


class ContactList(BaseModel):
    contacts: list[ContactOut]


class NoticeItem(BaseModel):
    id: int
    kind: str = Field(description="e.g. disclosure.approved, contact.overdue, token.issued")
    created_at: str | None
    read: bool
    case_id: str | None
    subject_id: str | None = Field(description="The disclosure, contact or token concerned.")
    text: str = Field(description="In the language of Accept-Language (ja or en; default ja).")


class NoticeList(BaseModel):
    notifications: list[NoticeItem]


class NoticesMarked(BaseModel):
    marked: int
