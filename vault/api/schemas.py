"""Response shapes of the JSON API (request bodies: ``vault.services.schemas``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class DocumentItem(BaseModel):
    id: str
    case_id: str
    class_: str = Field(alias="class")
    title: str
    latest_version: int
    final_version: int | None


class DocumentList(BaseModel):
    documents: list[DocumentItem]


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
