"""The vault's error tree.  Services raise these; ``vault.api.errors`` maps them to responses.

KinkoError                 (status, code, message)
├── BadRequest             400  malformed or missing input (e.g. purpose_required)
├── Unauthenticated        401  no token, unknown, expired or revoked token
├── Forbidden              403  a member (or admin/auditor) lacking the permission
├── NotFound               404  does not exist, or is not visible to the caller
├── Conflict               409  state does not allow it (transition not forward, ...)
├── Gone                   410  destroyed for good (a crypto-shredded case)
├── RequestTimeout         408  an upload's body stopped arriving
├── PreconditionFailed     412  If-Match did not match the latest version
├── Unprocessable          422  well-formed but semantically invalid body
├── TooManyRequests        429  sign-in attempts throttled
├── IntegrityFailure       500  stored ciphertext failed authentication
└── AuditUnavailable       503  the audit log could not be written: fail closed
"""

from __future__ import annotations


class KinkoError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(KinkoError):
    status = 400
    code = "bad_request"


class Unauthenticated(KinkoError):
    status = 401
    code = "unauthenticated"


class Forbidden(KinkoError):
    status = 403
    code = "forbidden"


class NotFound(KinkoError):
    status = 404
    code = "not_found"


class Conflict(KinkoError):
    status = 409
    code = "conflict"


class Gone(KinkoError):
    status = 410
    code = "gone"


class RequestTimeout(KinkoError):
    status = 408
    code = "request_timeout"


class PreconditionFailed(KinkoError):
    status = 412
    code = "precondition_failed"


class Unprocessable(KinkoError):
    status = 422
    code = "validation_error"


class TooManyRequests(KinkoError):
    status = 429
    code = "too_many_requests"


class IntegrityFailure(KinkoError):
    status = 500
    code = "integrity_error"


class StoreUnavailable(KinkoError):
    """The catalog or the blob store could not answer in time (locked, unreachable)."""

    status = 503
    code = "store_unavailable"


class AuditUnavailable(KinkoError):
    status = 503
    code = "audit_unavailable"
