"""One audit event per request: the scope every service call runs inside.

A scope collects the event's fields as the request is handled and appends exactly one event:
``allow()`` when the action is permitted (called *before* content is served or a write becomes
visible), or ``fail(exc)`` when the request is refused, which records the refusal and re-raises.
If the event cannot be written, ``AuditUnavailable`` replaces whatever the answer would have
been: nothing is served without its record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy.exc import OperationalError

from vault.audit.log import AuditLog
from vault.errors import AuditUnavailable, KinkoError, StoreUnavailable
from vault.storage.base import StorageUnavailable

log = logging.getLogger("kinko.audit")


@dataclass(frozen=True)
class RequestInfo:
    ip: str | None
    user_agent: str | None
    device: str | None
    request_id: str


class AuditScope:
    def __init__(
        self, log: AuditLog, info: RequestInfo, actor: str | None, action: str, **fields: Any
    ) -> None:
        self._log = log
        self.info = info
        self.actor = actor
        self.action = action
        self.fields: dict[str, Any] = {
            "case_id": None,
            "document_id": None,
            "version": None,
            "class": None,
            "purpose": None,
            "target": None,
        }
        self.set(**fields)
        self.event: dict[str, Any] | None = None

    def set(self, **fields: Any) -> None:
        for key, value in fields.items():
            name = "class" if key == "cls" else key
            if name not in self.fields:
                raise TypeError(f"unknown audit field {key}")
            self.fields[name] = value

    @property
    def done(self) -> bool:
        return self.event is not None

    def record(self, decision: str, reason: str) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "action": self.action,
            "decision": decision,
            "reason": reason,
            **self.fields,
            "client": {
                "ip": self.info.ip,
                "user_agent": self.info.user_agent,
                "device": self.info.device,
            },
            "request_id": self.info.request_id,
        }

    def allow(self, reason: str = "ok") -> dict[str, Any]:
        if self.event is not None:
            raise RuntimeError("audit event already written for this request")
        self.event = self._log.append(self.record("allow", reason))
        return self.event

    def fail(self, exc: BaseException) -> NoReturn:
        """Record a refused or failed request, then raise the error the caller should see."""
        if isinstance(exc, AuditUnavailable):
            raise exc
        reason = exc.code if isinstance(exc, KinkoError) else "internal_error"
        if self.event is None:
            try:
                self.event = self._log.append(self.record("deny", reason))
            except AuditUnavailable as audit_exc:
                raise audit_exc from exc
        elif self.event.get("decision") == "allow":
            # The allow event was written, then the change itself failed (a catalog commit,
            # say).  A second event with the same request id says so, so the log never claims
            # a change that did not happen.
            try:
                self._log.append(self.record("deny", f"failed_after_allow:{reason}"))
            except AuditUnavailable:
                log.error("could not record that %s failed after it was allowed", self.action)
        if isinstance(exc, OperationalError | StorageUnavailable):
            # A locked catalog or an unreachable bucket is an outage, not a bug: 503.
            log.warning("store unavailable in %s: %s", self.action, exc)
            raise StoreUnavailable("the store could not answer in time; retry") from exc
        if not isinstance(exc, KinkoError):
            # An unexpected failure becomes a plain 500 answered by the API's own handler,
            # rather than escaping to the server, which would drop the connection.
            log.error("unexpected error in %s", self.action, exc_info=exc)
            raise KinkoError("internal error") from exc
        raise exc

    def __enter__(self) -> AuditScope:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            if isinstance(exc, Exception):
                self.fail(exc)
            return
        if self.event is None:
            self.allow()
