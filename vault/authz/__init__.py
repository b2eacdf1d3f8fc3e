"""The one authorization path: Casbin for case-role permissions plus the decision rule of §4.2."""

from vault.authz.guard import (
    CaseView,
    ContentGrant,
    Guard,
    Principal,
)

__all__ = ["CaseView", "ContentGrant", "Guard", "Principal"]
