"""Pure domain vocabulary: stages, document classes, roles, validation and the disclosure table.

Nothing here imports the rest of the vault, so every other layer can depend on it.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

STAGES: tuple[str, ...] = (
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
STAGE_INDEX: Mapping[str, int] = {s: i for i, s in enumerate(STAGES)}

CLASSES: tuple[str, ...] = (
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

GLOBAL_ROLES: tuple[str, ...] = ("admin", "auditor", "procurement")
CASE_ROLES: tuple[str, ...] = ("drafter", "supervisor", "evaluator", "reviewer")
ACTIONS: tuple[str, ...] = ("read", "write")

_CASE_NUMBER = re.compile(r"[A-Za-z0-9._-]{1,64}")
_USER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class DomainError(ValueError):
    """Input that breaks a rule of the domain; ``code`` is the stable API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validate_case_number(number: object) -> str:
    if not isinstance(number, str) or not _CASE_NUMBER.fullmatch(number):
        raise DomainError(
            "invalid_case_number", "case number must be 1-64 characters of A-Z a-z 0-9 . _ -"
        )
    return number


def validate_user_name(name: object) -> str:
    if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
        raise DomainError(
            "invalid_user_name",
            "user name must be 1-64 characters of a-z 0-9 . _ -, starting with a letter or digit",
        )
    return name


def validate_title(title: object) -> str:
    """Check a free-text title: 1-255 characters and no control characters.

    Titles are only ever stored encrypted and shown back; they are never used as a path, so any
    other Unicode text is allowed.
    """
    if not isinstance(title, str) or not 1 <= len(title) <= 255:
        raise DomainError("invalid_title", "title must be 1-255 characters")
    for ch in title:
        # Category C* covers control (Cc), format (Cf), surrogate (Cs), private use (Co) and
        # unassigned (Cn) characters. Only the control characters are refused by the contract;
        # format characters such as the zero-width joiner appear in real Japanese text.
        if unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029":
            raise DomainError("invalid_title", "title must not contain control characters")
    if not title.strip():
        raise DomainError("invalid_title", "title must not be blank")
    return title


def validate_stage(stage: object) -> str:
    if not isinstance(stage, str) or stage not in STAGE_INDEX:
        raise DomainError("invalid_stage", f"stage must be one of: {', '.join(STAGES)}")
    return stage


def validate_class(cls: object) -> str:
    if not isinstance(cls, str) or cls not in CLASSES:
        raise DomainError("invalid_class", f"class must be one of: {', '.join(CLASSES)}")
    return cls


def validate_case_roles(roles: list[str]) -> list[str]:
    if not roles:
        raise DomainError("invalid_roles", "at least one case role is required")
    for r in roles:
        if r not in CASE_ROLES:
            raise DomainError("invalid_roles", f"case roles must be among: {', '.join(CASE_ROLES)}")
    return sorted(set(roles))


def validate_global_roles(roles: list[str]) -> list[str]:
    for r in roles:
        if r not in GLOBAL_ROLES:
            raise DomainError(
                "invalid_roles", f"global roles must be among: {', '.join(GLOBAL_ROLES)}"
            )
    return sorted(set(roles))


def validate_purpose(purpose: str | None) -> str | None:
    """Return a usable purpose, or None when it is missing or unusable (the caller decides)."""
    if purpose is None:
        return None
    if not 1 <= len(purpose) <= 500 or not purpose.strip():
        return None
    return purpose


@dataclass(frozen=True)
class DisclosureTable:
    """When the final version of each class becomes public (None = never)."""

    disclosed_from: Mapping[str, str | None]

    def is_disclosed(self, cls: str, stage: str) -> bool:
        start = self.disclosed_from.get(cls)
        return start is not None and STAGE_INDEX[stage] >= STAGE_INDEX[start]

    @classmethod
    def load(cls, path: Path) -> DisclosureTable:
        """Load and validate the operator-editable CSV; a bad table stops start-up."""
        rows: dict[str, str | None] = {}
        with path.open(encoding="utf-8", newline="") as fh:
            lines = [ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
        reader = csv.DictReader(lines)
        for row in reader:
            klass = (row.get("class") or "").strip()
            start = (row.get("disclosed_from") or "").strip()
            if klass not in CLASSES:
                raise ValueError(f"{path}: unknown class {klass!r}")
            if klass in rows:
                raise ValueError(f"{path}: class {klass!r} listed twice")
            if start != "never" and start not in STAGE_INDEX:
                raise ValueError(f"{path}: unknown stage {start!r} for class {klass!r}")
            rows[klass] = None if start == "never" else start
        missing = set(CLASSES) - set(rows)
        if missing:
            raise ValueError(f"{path}: classes missing: {', '.join(sorted(missing))}")
        return cls(rows)
