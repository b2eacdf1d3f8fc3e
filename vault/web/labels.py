"""The names people read for the vault's codes (stages, classes, roles, refusals), and the
way times are shown.  Each is an English msgid marked for extraction; pages translate it."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from vault.web.i18n import N_

STAGES = {
    "drafting": N_("Drafting"),
    "rfi": N_("Request for information"),
    "review": N_("Contract review"),
    "announced": N_("Tender announced"),
    "submission_closed": N_("Proposals closed"),
    "evaluation": N_("Technical evaluation"),
    "opened": N_("Bids opened"),
    "awarded": N_("Awarded"),
    "closed": N_("Closed"),
}

CLASSES = {
    "schedule": N_("Procurement schedule"),
    "specification": N_("Specification"),
    "evaluation_criteria": N_("Evaluation criteria"),
    "technical_scores": N_("Technical scores"),
    "competition": N_("Competition"),
    "budget": N_("Budget"),
    "estimated_price": N_("Estimated price"),
    "evaluator_names": N_("Evaluator names"),
    "proposal": N_("Proposal"),
    "contact_record": N_("Vendor contact record"),
}

ROLES = {
    "admin": N_("Administrator"),
    "auditor": N_("Auditor"),
    "procurement": N_("Procurement staff"),
    "drafter": N_("Drafter"),
    "supervisor": N_("Supervisor"),
    "evaluator": N_("Evaluator"),
    "reviewer": N_("Contract reviewer"),
}

# What a refusal says to a person, by the code the services raise.  Codes not listed here
# are shown with a general sentence and the code itself, which support staff can look up.
ERROR_TEXTS = {
    "bad_credentials": N_("The user name or password is wrong."),
    "user_disabled": N_("The user name or password is wrong."),
    "sign_in_throttled": N_("Too many failed sign-ins. Wait a minute and try again."),
    "csrf_missing": N_("The form has expired. Reload the page and try again."),
    "csrf_invalid": N_("The form has expired. Reload the page and try again."),
    "password_mismatch": N_("The two passwords differ."),
    "password_too_short": N_("The password must be at least 12 characters."),
    "password_too_long": N_("The password is too long."),
    "password_is_name": N_("The password must not be your user name."),
    "password_common": N_("This password is too well known. Choose another."),
    "invitation_not_found": N_("This invitation link is not valid."),
    "invitation_used": N_(
        "This invitation link has already been used. Ask an administrator for a new one."
    ),
    "invitation_expired": N_(
        "This invitation link has expired. Ask an administrator for a new one."
    ),
    "forbidden": N_("You are not allowed to do this."),
    "case_not_found": N_("The case was not found."),
    "document_not_found": N_("The document was not found."),
    "user_not_found": N_("The user was not found."),
    "purpose_required": N_("Enter the purpose of this download."),
    "audit_unavailable": N_(
        "The audit log cannot be written just now, so nothing is served. Try again later."
    ),
    "store_unavailable": N_("The vault is busy. Try again in a moment."),
    "form_too_large": N_("The form is too large."),
    # Users and tokens (the Users and My account pages).
    "admin_required": N_("Only an administrator may manage users and tokens."),
    "user_exists": N_("A user with this name already exists."),
    "invalid_user_name": N_(
        "The user name must be 1-64 characters of a-z, 0-9, . _ -, starting with a letter or digit."
    ),
    "invalid_display_name": N_("The display name must be 1-255 characters."),
    "invalid_roles": N_("One of the chosen roles does not exist."),
    "cannot_disable_self": N_("You cannot disable your own account."),
    "token_not_found": N_("The token was not found."),
    "invalid_ttl": N_("The lifetime must be a whole number of days between 1 and 3650."),
    # Access review and the audit pages.
    "own_read": N_(
        "Nobody may review their own read; another supervisor or an auditor decides it."
    ),
    "already_decided": N_("This read has already been reviewed."),
    "note_required": N_("A flagged read needs a note saying why."),
    "reviewer_required": N_("Only a supervisor of the case or an auditor may review reads."),
    "review_not_found": N_("The review item was not found."),
    "auditor_required": N_("Only auditors may use the audit log."),
    "invalid_verdict": N_("Choose Confirm or Flag."),
    "invalid_note": N_("The note is too long."),
    "invalid_date": N_("Enter a date as YYYY-MM-DD."),
    "invalid_time": N_("Enter a valid date and time."),
    "invalid_cursor": N_("The page link is not valid. Start the search again."),
    "invalid_limit": N_("The number of events per page must be a whole number from 1 to 1000."),
    "invalid_decision": N_("The decision must be allow or deny."),
    "invalid_older_than_days": N_("The number of days must be a whole number from 0 to 36500."),
    "no_checkpoint": N_("No checkpoint has been cut yet."),
    "no_signing_key": N_("The vault has no checkpoint signing key."),
}


def local_time(value: datetime | str | None, tz: ZoneInfo, with_zone: bool = True) -> str:
    """A UTC instant (a datetime or ISO 8601 text) as the office's local time."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        instant = value
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    local = instant.astimezone(tz)
    text = local.strftime("%Y-%m-%d %H:%M")
    return f"{text} ({local.tzname()})" if with_zone else text
