"""The one error map at the service boundary: whatever went wrong → the error the caller sees.

Services raise the vault's own errors (``vault.errors``); dependencies raise theirs.  Every audit
scope opened by a service translates through ``translate`` before it records the refusal, so the
log's ``reason`` and the HTTP answer always agree, and the audit package needs to know nothing
about SQLAlchemy or the blob stores.

- a locked or unreachable catalog (``OperationalError``, a dropped connection, no free
  connection in time) or blob store (``StorageUnavailable``,
  a full disk included) is an outage: 503 ``store_unavailable``;
- input that is too deeply nested for the parser (``RecursionError``) is the client's: 400;
- anything else unexpected is a bug: logged with its traceback and answered as a plain 500.
"""

from __future__ import annotations

import logging

from vault.db import STORE_ERRORS
from vault.errors import BadRequest, KinkoError, StoreUnavailable
from vault.storage.base import StorageUnavailable

log = logging.getLogger("kinko.services")


def translate(exc: BaseException) -> KinkoError:
    if isinstance(exc, KinkoError):
        return exc
    if isinstance(exc, (*STORE_ERRORS, StorageUnavailable)):
        log.warning("store unavailable: %s", exc)
        return StoreUnavailable("the store could not answer in time; retry")
    if isinstance(exc, RecursionError):
        return BadRequest("the input is nested too deeply", code="input_too_deep")
    log.error("unexpected error", exc_info=exc)
    return KinkoError("internal error")
