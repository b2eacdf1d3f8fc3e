"""Readiness: whether this node can serve, for load balancers (``GET /readyz``).

A node is ready when the three stores it cannot serve without all answer: the catalog, the
audit store (a read is refused when its event cannot be written) and the blob store.  Each is
asked the smallest question it can answer; none of the checks is an audit event, as a
liveness probe is not (they run every few seconds and concern no case, document or user).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from vault.core import Vault

log = logging.getLogger("kinko.health")

# A name of the blob name's shape that no blob has (blob names are random): asking whether it
# exists makes the store answer (an S3 HEAD) without touching any real blob.
PROBE_BLOB = "0" * 32
CHECK_TIMEOUT_SECONDS = 3.0

# Checks run in a pool of their own, so that a store that hangs holds these threads only,
# never the ones requests need, and a probe answers within the timeout whatever happens.
_POOL = ThreadPoolExecutor(max_workers=6, thread_name_prefix="kinko-readyz")


def _catalog(vault: Vault) -> None:
    with vault.lookup() as conn:
        conn.exec_driver_sql("SELECT 1")


def _audit(vault: Vault) -> None:
    with vault.audit_engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


def _blobs(vault: Vault) -> None:
    vault.blobs.exists(PROBE_BLOB)


CHECKS = {"catalog": _catalog, "audit": _audit, "blobs": _blobs}


def readiness(vault: Vault) -> tuple[bool, dict[str, str]]:
    """(ready, {store: "ok" | "unavailable" | "timeout"})."""
    futures: dict[str, Any] = {name: _POOL.submit(check, vault) for name, check in CHECKS.items()}
    answers: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=CHECK_TIMEOUT_SECONDS)
            answers[name] = "ok"
        except FutureTimeout:
            answers[name] = "timeout"
        except Exception as exc:
            log.warning("readiness: the %s store did not answer: %s", name, exc)
            answers[name] = "unavailable"
    return all(v == "ok" for v in answers.values()), answers
