"""A non-member cannot tell "exists but hidden" from "does not exist" by the time a 404 takes.

Both paths run the same statements (lookup, then the caller's view of the case, computed for a
missing case too) and end in the same refusal.  Measured as issue 8 asks: medians over 300
interleaved request pairs per route, within 0.25 ms or 5 % of the median, whichever is larger.
The pairs alternate which of the two goes first, so a drift in machine load hits both alike.
"""

from __future__ import annotations

import statistics
import time
import uuid

import httpx
import pytest

from clients import KinkoClient

PAIRS = 300
PURPOSE = {"X-Access-Purpose": "timing"}


def _median_ms(
    client: KinkoClient, hidden: str, missing: str, headers: dict[str, str]
) -> tuple[float, float]:
    http = client.http
    times: dict[str, list[float]] = {hidden: [], missing: []}
    # Warm both paths (connection, caches) before measuring.
    for url in (hidden, missing) * 10:
        assert http.get(url, headers=headers).status_code == 404
    for i in range(PAIRS):
        order = (hidden, missing) if i % 2 == 0 else (missing, hidden)
        for url in order:
            t0 = time.perf_counter()
            resp = http.get(url, headers=headers)
            times[url].append((time.perf_counter() - t0) * 1000)
            assert resp.status_code == 404, resp.text
    return statistics.median(times[hidden]), statistics.median(times[missing])


@pytest.fixture
def setup(server):  # type: ignore[no-untyped-def]
    # A fresh hidden case and document (and caller) per measurement, so no route's pairs run
    # against ids that earlier measurements already made hot or cold.
    tag = uuid.uuid4().hex[:8]
    drafter = server.user(f"to-drafter-{tag}", ["procurement"])
    outsider = server.user(f"to-outsider-{tag}", ["procurement"])
    case = drafter.create_case(f"TO-{uuid.uuid4().hex[:8]}", "時間差")["id"]
    doc = drafter.create_document(case, "budget", "予算", b"secret")["id"]
    return outsider, case, doc


@pytest.mark.parametrize(
    ("route", "headers"),
    [
        ("/api/v1/documents/{}", {}),
        ("/api/v1/cases/{}", {}),
        ("/api/v1/documents/{}/content", PURPOSE),
    ],
    ids=["document", "case", "content"],
)
def test_hidden_and_missing_take_the_same_time(setup, route: str, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    outsider, case, doc = setup
    target = case if "cases" in route else doc
    hidden = route.format(target)
    missing = route.format(uuid.uuid4().hex)
    # Same body, so nothing but time could tell them apart.
    a = outsider.http.get(hidden, headers=headers)
    b = outsider.http.get(missing, headers=headers)
    assert (a.status_code, a.json()) == (b.status_code, b.json())
    # On a shared 2-core machine one measurement's medians move by ±0.2 ms with the fsyncs of
    # the audit log; a real oracle (the old 0.5 ms gap) shows in every measurement, so up to
    # three are taken and one within the bound suffices.
    attempts = []
    for _ in range(3):
        hidden_ms, missing_ms = _median_ms(outsider, hidden, missing, headers)
        bound = max(0.25, 0.05 * max(hidden_ms, missing_ms))
        attempts.append((round(hidden_ms, 3), round(missing_ms, 3), round(bound, 3)))
        print(f"{route}: hidden {hidden_ms:.3f} ms, missing {missing_ms:.3f} ms, bound {bound:.3f}")
        if abs(hidden_ms - missing_ms) <= bound:
            return
    raise AssertionError(f"hidden and missing differ beyond the bound every time: {attempts}")


def test_responses_are_byte_identical_apart_from_the_request_id(setup) -> None:  # type: ignore[no-untyped-def]
    outsider, _case, doc = setup
    a = outsider.http.get(f"/api/v1/documents/{doc}")
    b = outsider.http.get(f"/api/v1/documents/{uuid.uuid4().hex}")
    assert a.content == b.content
    drop = {"x-request-id", "date"}
    assert {k: v for k, v in a.headers.items() if k not in drop} == {
        k: v for k, v in b.headers.items() if k not in drop
    }
    assert isinstance(a, httpx.Response)
