"""Every (method, path, status) answered to a client made by ``KinkoServer.client()``.

``tests/api/test_openapi.py`` checks, after every other test, that each status the suite saw is
one its operation declares in /openapi.json.  The list lives in this module of its own (always
imported by this one name) because ``conftest`` is also importable as ``tests.conftest``, and
two copies of a module would keep two lists.
"""

from __future__ import annotations

import httpx

SEEN_RESPONSES: list[tuple[str, str, int]] = []


def record_response(response: httpx.Response) -> None:
    request = response.request
    SEEN_RESPONSES.append((request.method, request.url.path, response.status_code))
