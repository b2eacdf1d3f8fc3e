"""Request and response shapes, for validation-free documentation of the JSON API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UserCreate(BaseModel):
    name: str
    display_name: str | None = None
    roles: list[str] = Field(default_factory=list)


class TokenCreate(BaseModel):
    ttl_seconds: int | None = None


class CaseCreate(BaseModel):
    number: str
    title: str


class MemberSet(BaseModel):
    roles: list[str]
    expires_at: str | None = None


class TransitionCreate(BaseModel):
    stage: str
    at: str | None = None


class FinalSet(BaseModel):
    version: int


class DocumentItem(BaseModel):
    id: str
    case_id: str
    class_: str = Field(alias="class")
    title: str
    latest_version: int
    final_version: int | None


class DocumentList(BaseModel):
    documents: list[DocumentItem]
