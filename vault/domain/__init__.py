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


# An address as mail servers take it: a local part of printable ASCII without spaces or
# the characters that would need quoting, an @, and a domain of dot-separated labels.
# Internationalised addresses are out of scope for the notices Kinko sends.
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@"
    r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def validate_email(email: object) -> str:
    """A user's e-mail address, with the domain in lower case (it is case-insensitive)."""
    if not isinstance(email, str) or len(email) > 254 or not _EMAIL.fullmatch(email):
        raise DomainError("invalid_email", "email must be an address like name@example.jp")
    local, _, domain = email.rpartition("@")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise DomainError("invalid_email", "email must be an address like name@example.jp")
    return f"{local}@{domain.lower()}"


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


PURPOSE_MAX = 500


def _invisible(ch: str) -> bool:
    # Whitespace and format characters (zero-width space, joiners, BOM, bidi marks) show
    # nothing: a purpose made only of them is no purpose.
    return ch.isspace() or unicodedata.category(ch) == "Cf"


def check_purpose(purpose: str | None) -> str:
    """A usable business purpose (SPEC §5), or DomainError saying what is wrong with it.

    ``purpose_required`` when it is missing, empty or invisible; ``purpose_invalid`` when it is
    too long or holds control characters (NUL, CR/LF, ...), which would let one purpose pose as
    several lines of a report.  Decoding (percent-escapes, UTF-8) happens before this.
    """
    if purpose is None or all(_invisible(ch) for ch in purpose):
        raise DomainError(
            "purpose_required",
            f"a business purpose is required in X-Access-Purpose (1-{PURPOSE_MAX} characters)",
        )
    if len(purpose) > PURPOSE_MAX:
        raise DomainError("purpose_invalid", f"the purpose is longer than {PURPOSE_MAX} characters")
    # Cc: NUL, CR, LF, TAB...; Zl/Zp: U+2028/U+2029, which many viewers show as line breaks.
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in purpose):
        raise DomainError(
            "purpose_invalid", "the purpose holds control characters (line breaks, NUL, ...)"
        )
    return purpose


DEFAULT_MEDIA_TYPE = "application/octet-stream"
MEDIA_TYPE_MAX = 255

# RFC 9110 §8.3.1: type "/" subtype *( OWS ";" OWS parameter ), names being tokens and a
# parameter value a token or a quoted string (no control characters inside the quotes).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # noqa: S105 - the RFC 9110 token grammar.
_QUOTED = r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"'
_PARAM = rf"{_TOKEN}=(?:{_TOKEN}|{_QUOTED})"
# RFC 9110 lets a parameter be empty ("text/plain;"), which some clients send.
_MEDIA_TYPE = re.compile(
    rf"(?P<type>{_TOKEN})/(?P<subtype>{_TOKEN})(?P<params>(?:[ \t]*;[ \t]*(?:{_PARAM})?)*)"
)
_PARAM_RE = re.compile(_PARAM)


def media_type(raw: str | None) -> str:
    """The media type an upload declared in ``Content-Type``, checked and normalised.

    An absent or empty header means "bytes of no stated kind": ``application/octet-stream``.
    Anything else must be a single syntactically valid media type of at most
    ``MEDIA_TYPE_MAX`` characters, or DomainError ``invalid_content_type``: a value that is
    refused is better than one silently replaced, because the uploader learns at once that
    the type they meant to keep will not be kept.  Type and subtype are lower-cased (they are
    case-insensitive); parameters are kept as sent.  Wildcards (``*/*``) name a range of types
    in ``Accept``, never the type of one document, and are refused.
    """
    if raw is None or not raw.strip():
        return DEFAULT_MEDIA_TYPE
    value = raw.strip()
    match = _MEDIA_TYPE.fullmatch(value) if len(value) <= MEDIA_TYPE_MAX else None
    if match is None or "*" in (match["type"], match["subtype"]):
        raise DomainError(
            "invalid_content_type",
            f"Content-Type must be one media type such as text/plain; charset=utf-8 "
            f"(at most {MEDIA_TYPE_MAX} characters)",
        )
    params = "; ".join(p.group() for p in _PARAM_RE.finditer(match["params"]))
    base = f"{match['type'].lower()}/{match['subtype'].lower()}"
    return f"{base}; {params}" if params else base


_ASCII_INT = re.compile(r"[0-9]{1,9}")


def parse_positive_int(raw: str) -> int | None:
    """A positive integer in ASCII decimal digits (``①`` and Arabic-Indic digits are not)."""
    if not _ASCII_INT.fullmatch(raw):
        return None
    number = int(raw)
    return number if number >= 1 else None


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
