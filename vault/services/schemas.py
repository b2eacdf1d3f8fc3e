"""Request bodies: one pydantic model each, which both validates the body and documents it.

Services validate a body inside their audit scope (``JsonBody.parse``), so a malformed body is
a logged 400 like any other refusal; the API uses the same models for its OpenAPI schema.
Types are checked strictly (``"3"`` is not a number, ``true`` is not an integer); the values'
own rules (case number syntax, known roles, time formats) stay with the domain and services,
which give each its stable error code.  ``codes`` names the error code of each field.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

NOTE_MAX = 2000


class RequestBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    codes: ClassVar[dict[str, str]] = {}


class UserCreate(RequestBody):
    name: str
    display_name: str | None = None
    email: str | None = Field(default=None, description="Where notices reach the user.")
    roles: list[str] = Field(default_factory=list)
    codes: ClassVar[dict[str, str]] = {
        "name": "invalid_user_name",
        "display_name": "invalid_display_name",
        "email": "invalid_email",
        "roles": "invalid_roles",
    }


class UserUpdate(RequestBody):
    """The fields an admin changes; a field left out stays as it is, ``null`` clears it."""

    display_name: str | None = None
    email: str | None = None
    roles: list[str] | None = None
    codes: ClassVar[dict[str, str]] = {
        "display_name": "invalid_display_name",
        "email": "invalid_email",
        "roles": "invalid_roles",
    }


class TokenCreate(RequestBody):
    ttl_seconds: int | None = Field(default=None, description="60 to 315360000 seconds.")
    codes: ClassVar[dict[str, str]] = {"ttl_seconds": "invalid_ttl"}


class CaseCreate(RequestBody):
    number: str
    title: str
    codes: ClassVar[dict[str, str]] = {"number": "invalid_case_number", "title": "invalid_title"}


class MemberSet(RequestBody):
    roles: list[str]
    expires_at: str | None = Field(default=None, description="RFC 3339 time in the future.")
    codes: ClassVar[dict[str, str]] = {"roles": "invalid_roles", "expires_at": "invalid_time"}


class TransitionCreate(RequestBody):
    stage: str
    at: str | None = Field(default=None, description="RFC 3339; a future time schedules it.")
    codes: ClassVar[dict[str, str]] = {"stage": "invalid_stage", "at": "invalid_time"}


class FinalSet(RequestBody):
    version: int
    codes: ClassVar[dict[str, str]] = {"version": "invalid_version"}


class ReviewDecision(RequestBody):
    # A decision is a record of its own: anything but these two fields is refused rather
    # than silently dropped, so a reviewer never believes a field was kept.
    model_config = ConfigDict(strict=True, extra="forbid")
    verdict: Literal["confirmed", "flagged"]
    note: str | None = Field(default=None, max_length=NOTE_MAX)
    codes: ClassVar[dict[str, str]] = {"verdict": "invalid_verdict", "note": "invalid_note"}


class DisclosureCreate(RequestBody):
    """A request to give one version of a document to a named outsider (情報提供)."""

    recipient_name: str = Field(min_length=1, max_length=200)
    recipient_organization: str = Field(min_length=1, max_length=200)
    recipient_email: str
    reason: str = Field(min_length=1, max_length=NOTE_MAX)
    version: int | None = Field(default=None, description="Default: the final, else the latest.")
    expires_at: str | None = Field(
        default=None, description="RFC 3339, at most 14 days ahead; default 7 days."
    )
    max_downloads: int | None = Field(default=None, description="1 to 20; default 3.")
    codes: ClassVar[dict[str, str]] = {
        "recipient_name": "invalid_recipient",
        "recipient_organization": "invalid_recipient",
        "recipient_email": "invalid_email",
        "reason": "invalid_reason",
        "version": "invalid_version",
        "expires_at": "invalid_time",
        "max_downloads": "invalid_max_downloads",
    }


class DecisionNote(RequestBody):
    note: str | None = Field(default=None, max_length=NOTE_MAX)
    codes: ClassVar[dict[str, str]] = {"note": "invalid_note"}


class ContactCreate(RequestBody):
    """A prior report (事前報告) of a contact with a vendor."""

    vendor: str = Field(min_length=1, max_length=200)
    channel: Literal["meeting", "phone", "email", "web"]
    planned_at: str = Field(description="RFC 3339.")
    participants: list[str] = Field(description="User names of our participants.")
    agenda: str = Field(min_length=1, max_length=NOTE_MAX)
    minor: bool = Field(default=False, description="A minor contact (receiving an estimate).")
    urgent: bool = Field(default=False, description="From `review` on, with a justification.")
    justification: str | None = Field(default=None, max_length=NOTE_MAX)
    codes: ClassVar[dict[str, str]] = {
        "vendor": "invalid_vendor",
        "channel": "invalid_channel",
        "planned_at": "invalid_time",
        "participants": "invalid_participants",
        "agenda": "invalid_agenda",
        "minor": "invalid_minor",
        "urgent": "invalid_urgent",
        "justification": "invalid_justification",
    }


class ContactReport(RequestBody):
    """The report after the contact (事後報告)."""

    summary: str = Field(min_length=1, max_length=NOTE_MAX)
    information_provided: bool
    disclosures: list[str] = Field(default_factory=list)
    codes: ClassVar[dict[str, str]] = {
        "summary": "invalid_summary",
        "information_provided": "invalid_information_provided",
        "disclosures": "invalid_disclosures",
    }
