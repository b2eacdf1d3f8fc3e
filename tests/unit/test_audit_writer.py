"""The audit writer thread (group commit) survives what an outage does to a batch: events
whose requests gave up, a commit that fails, and it keeps numbering without a gap after."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from vault.audit.log import AuditLog, _Pending
from vault.db import AUDIT_MIGRATIONS, make_engine, upgrade
from vault.errors import AuditUnavailable


def record(n: int) -> dict[str, Any]:
    return {"actor": f"u{n}", "action": "document.read", "decision": "allow", "reason": "ok"}


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine, AUDIT_MIGRATIONS, "alembic_version_audit")
    return engine


@pytest.fixture
def audit(engine: Engine) -> AuditLog:
    return AuditLog(engine, timeout=2.0)


def test_a_failed_commit_of_given_up_events_does_not_end_the_writer(
    audit: AuditLog, engine: Engine
) -> None:
    gave_up: Future[dict[str, Any]] = Future()
    assert gave_up.cancel()  # its request timed out before the writer took it
    waiting: Future[dict[str, Any]] = Future()

    def lost_at_commit(_conn: Any) -> None:
        raise RuntimeError("connection lost at commit")

    event.listen(engine, "commit", lost_at_commit)
    # Only the cancelled event: nothing is claimed, the commit fails, and the failure must
    # not try to claim the cancelled event a second time (which raises).
    assert audit._commit_batch([_Pending(record(0), gave_up)]) is False
    # A live one: it hears of the failure.
    assert audit._commit_batch([_Pending(record(1), waiting)]) is False
    with pytest.raises(AuditUnavailable):
        waiting.result(timeout=1)
    event.remove(engine, "commit", lost_at_commit)

    audit.start()
    try:
        got = [audit.append(record(n))["seq"] for n in range(3)]
    finally:
        audit.stop()
    assert got == [0, 1, 2]


def test_events_queued_while_the_lock_is_awaited_join_the_batch(audit: AuditLog) -> None:
    futures: list[Future[dict[str, Any]]] = [Future() for _ in range(5)]
    first, *rest = (_Pending(record(n), f) for n, f in enumerate(futures))
    for p in rest:
        audit._queue.put(p)
    assert audit._commit_batch([first]) is False
    seqs = [f.result(timeout=1)["seq"] for f in futures]
    assert seqs == [0, 1, 2, 3, 4]
    assert audit._queue.empty()
