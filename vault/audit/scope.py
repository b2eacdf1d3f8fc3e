"""One audit event per request: the scope every service call runs inside.

A scope collects the event's fields as the request is handled and appends exactly one event:
``allow()`` when the action is permitted (called *before* content is served or a write becomes
visible), or ``fail(exc)`` when the request is refused, which records the refusal and re-raises.
If the event cannot be written, ``AuditUnavailable`` replaces whatever the answer would have
been: nothing is served without its record.

The scope knows nothing of databases or blob stores: the service layer hands it ``translate``,
the one map from whatever went wrong to the error the caller sees (``vault.services.errors``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn

from vault.audit.log import AuditLog
from vault.audit.records import SUBJECT_FIELDS, RequestInfo, build_record
from vault.errors import AuditUnavailable, KinkoError

log = logging.getLogger("kinko.audit")

__all__ = ["AuditScope", "RequestInfo"]


def _plain(exc: BaseException) -> KinkoError:
    return exc if isinstance(exc, KinkoError) else KinkoError("internal error")


class AuditScope:
    def __init__(
        self,
        log: AuditLog,
        info: RequestInfo,
        actor: str | None,
        action: str,
        *,
        translate: Callable[[BaseException], KinkoError] = _plain,
        **fields: Any,
    ) -> None:
        self._log = log
        self._translate = translate
        self.info = info
        self.actor = actor
        self.action = action
        self.fields: dict[str, Any] = dict.fromkeys(SUBJECT_FIELDS)
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
        return build_record(
            self.info,
            actor=self.actor,
            action=self.action,
            decision=decision,
            reason=reason,
            **self.fields,
        )

    def allow(self, reason: str = "ok") -> dict[str, Any]:
        if self.event is not None:
            raise RuntimeError("audit event already written for this request")
        self.event = self._log.append(self.record("allow", reason))
        return self.event

    def fail(self, exc: BaseException) -> NoReturn:
        """Record a refused or failed request, then raise the error the caller should see."""
        if isinstance(exc, AuditUnavailable):
            raise exc
        err = self._translate(exc)
        if self.event is None:
            try:
                self.event = self._log.append(self.record("deny", err.code))
            except AuditUnavailable as audit_exc:
                raise audit_exc from exc
        elif self.event.get("decision") == "allow":
            # The allow event was written, then the change itself failed (a catalog commit,
            # say).  A compensating event with the same request id says so, so the log never
            # claims a change that did not happen.
            try:
                self._log.append(self.record("deny", f"failed_after_allow:{err.code}"))
            except AuditUnavailable:
                log.error("could not record that %s failed after it was allowed", self.action)
        if err is exc:
            raise err
        raise err from exc

    def __enter__(self) -> AuditScope:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            if isinstance(exc, Exception):
                self.fail(exc)
            return
        if self.event is None:
            self.allow()
