"""``/openapi.json`` tells the truth (issue 9): bearer auth where it is needed, the headers
each operation reads, the error envelope, typed answers, and statuses that really occur.

The last test runs after every other test of the session and checks each status the suite's
clients were answered against the operation's declared responses.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema
import pytest
from response_log import SEEN_RESPONSES

from clients import KinkoClient
from tests.conftest import KinkoServer
from vault.api.app import create_app

ERROR_REF = "#/components/schemas/ErrorBody"
PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/api/v1/public/documents"),
    ("get", "/api/v1/public/documents/{doc_id}/content"),
    ("head", "/api/v1/public/documents/{doc_id}/content"),
}
OPTIONAL_AUTH = {
    ("get", "/api/v1/documents/{doc_id}/content"),
    ("head", "/api/v1/documents/{doc_id}/content"),
}
HEADERS = {
    "X-Access-Purpose": {
        ("get", "/api/v1/documents/{doc_id}/content"),
        ("head", "/api/v1/documents/{doc_id}/content"),
    },
    "If-Match": {("put", "/api/v1/documents/{doc_id}/content")},
    "X-Kinko-Title": {("post", "/api/v1/cases/{case_id}/documents")},
    "Idempotency-Key": {
        ("post", "/api/v1/users"),
        ("post", "/api/v1/cases"),
        ("post", "/api/v1/cases/{case_id}/transitions"),
        ("post", "/api/v1/cases/{case_id}/documents"),
        ("put", "/api/v1/documents/{doc_id}/content"),
        # Token creation reads it only to refuse it (400): a token is shown once.
        ("post", "/api/v1/users/{name}/tokens"),
        ("post", "/api/v1/me/tokens"),
    },
}


@pytest.fixture(scope="module")
def schema(server: KinkoServer) -> dict[str, Any]:
    resp = httpx.get(f"{server.base_url}/openapi.json")
    assert resp.status_code == 200
    return dict(resp.json())


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            yield method, path, op


def header_names(op: dict[str, Any]) -> set[str]:
    return {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}


def test_bearer_scheme_is_declared_and_applied_where_a_token_is_needed(
    schema: dict[str, Any],
) -> None:
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    seen = set()
    for method, path, op in operations(schema):
        seen.add((method, path))
        if (method, path) in PUBLIC:
            assert "security" not in op, (method, path)
        elif (method, path) in OPTIONAL_AUTH:
            assert op["security"] == [{"bearerAuth": []}, {}], (method, path)
        else:
            assert op["security"] == [{"bearerAuth": []}], (method, path)
            assert "401" in op["responses"], (method, path)
    assert seen >= PUBLIC | OPTIONAL_AUTH


def test_headers_are_declared_on_the_operations_that_read_them(schema: dict[str, Any]) -> None:
    for method, path, op in operations(schema):
        names = header_names(op)
        for header, where in HEADERS.items():
            assert (header in names) == ((method, path) in where), (header, method, path)
        if path not in ("/healthz", "/readyz"):
            assert "X-Kinko-Device" in names, (method, path)
    sync = schema["paths"]["/api/v1/sync/manifest"]["get"]
    assert "If-None-Match" in header_names(sync)


def test_errors_reference_the_envelope_and_answers_are_typed(schema: dict[str, Any]) -> None:
    envelope = schema["components"]["schemas"]["ErrorBody"]
    assert envelope["required"] == ["error"]
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message"}
    assert "HTTPValidationError" not in str(schema)
    statuses: set[str] = set()
    for method, path, op in operations(schema):
        for status, response in op["responses"].items():
            statuses.add(status)
            content = response.get("content", {})
            if status.startswith(("4", "5")):
                assert content["application/json"]["schema"] == {"$ref": ERROR_REF}, (
                    method,
                    path,
                    status,
                )
            elif "application/json" in content:
                assert "$ref" in content["application/json"]["schema"], (method, path, status)
        if path.startswith("/api/v1/"):
            assert {"500", "503"} <= set(op["responses"]), (method, path)
    assert {"400", "401", "403", "404", "409", "410", "412", "422", "503"} <= statuses


# -- real answers against the declared ones ---------------------------------------------------


class Checker:
    """Checks every answer a client gets against the schema: status declared, body valid."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.templates = [
            (method, path, template_regex(path))
            for path, ops in schema["paths"].items()
            for method in ops
        ]
        self.checked: set[tuple[str, str, int]] = set()

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        found = [(p, rx) for m, p, rx in self.templates if m == method.lower() and rx.match(path)]
        if not found:
            return None
        # A literal segment beats a parameter (/reviews/report over /reviews/{seq}).
        template = max(found, key=lambda f: len(re.sub(r"\{[^}]+\}", "", f[0])))[0]
        return template, self.schema["paths"][template][method.lower()]

    def __call__(self, response: httpx.Response) -> None:
        method, path = response.request.method, response.request.url.path
        found = self.operation(method, path)
        assert found is not None, (method, path)
        template, op = found
        status = str(response.status_code)
        assert status in op["responses"], (method, template, status)
        self.checked.add((method, template, response.status_code))
        content = op["responses"][status].get("content", {})
        media = response.headers.get("content-type", "").split(";")[0]
        if media == "application/json" and "application/json" in content:
            response.read()
            body_schema = {
                "components": self.schema["components"],
                **content["application/json"]["schema"],
            }
            jsonschema.validate(response.json(), body_schema)


def template_regex(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


def checked_client(server: KinkoServer, checker: Checker, token: str | None) -> KinkoClient:
    client = server.client(token)
    client.http.event_hooks["response"].append(checker)
    return client


def test_real_answers_match_their_declarations(server: KinkoServer, schema: dict[str, Any]) -> None:
    check = Checker(schema)
    tag = uuid.uuid4().hex[:6]
    admin = checked_client(server, check, server.admin_token)
    anon = checked_client(server, check, None)
    bad = checked_client(server, check, "kinko_not-a-real-token")

    def user(name: str, roles: list[str]) -> KinkoClient:
        assert admin.http.post("/api/v1/users", json={"name": name, "roles": roles}).is_success
        token = admin.http.post(f"/api/v1/users/{name}/tokens", json={}).json()["token"]
        return checked_client(server, check, token)

    drafter = user(f"oa-drafter-{tag}", ["procurement"])
    sup = user(f"oa-sup-{tag}", [])
    auditor = user(f"oa-auditor-{tag}", ["auditor"])
    outsider = user(f"oa-outsider-{tag}", [])
    purpose = {"X-Access-Purpose": quote("仕様の確認", safe="")}

    assert anon.http.get("/healthz").status_code == 200
    assert anon.http.get("/api/v1/me").status_code == 401
    assert bad.http.get("/api/v1/public/documents").status_code == 401
    drafter.http.get("/api/v1/me")
    drafter.http.get("/api/v1/me/notifications")
    drafter.http.get("/api/v1/me/tokens")
    own = drafter.http.post("/api/v1/me/tokens", json={"ttl_seconds": 3600}).json()
    assert drafter.http.post("/api/v1/me/tokens", json={"ttl_seconds": 1}).status_code == 400
    assert drafter.http.delete(f"/api/v1/me/tokens/{own['id']}").status_code == 204
    assert drafter.http.delete(f"/api/v1/me/tokens/{own['id']}x").status_code == 404

    admin.http.get("/api/v1/users")
    admin.http.get(f"/api/v1/users/{drafter.me()['name']}")
    admin.http.get(f"/api/v1/users/oa-sup-{tag}/tokens")
    assert drafter.http.get("/api/v1/users").status_code == 403
    assert admin.http.get("/api/v1/users/nobody-at-all").status_code == 404
    dup = {"name": f"oa-sup-{tag}"}
    assert admin.http.post("/api/v1/users", json=dup).status_code == 409
    key = {"Idempotency-Key": f"oa-{tag}"}
    assert admin.http.post("/api/v1/users", json={"name": f"oa-i-{tag}"}, headers=key).is_success
    reused = admin.http.post("/api/v1/users", json={"name": f"oa-j-{tag}"}, headers=key)
    assert reused.status_code == 422
    assert admin.http.post(f"/api/v1/users/oa-i-{tag}/disable").status_code == 200
    assert admin.http.post(f"/api/v1/users/oa-i-{tag}/tokens", json={}).status_code == 409
    assert admin.http.post(f"/api/v1/users/oa-i-{tag}/enable").status_code == 200

    case = drafter.http.post("/api/v1/cases", json={"number": f"OA-{tag}", "title": "型"}).json()
    assert drafter.http.post("/api/v1/cases", json={"number": "?"}).status_code == 400
    member = f"/api/v1/cases/{case['id']}/members/oa-sup-{tag}"
    assert admin.http.put(member, json={"roles": ["supervisor"]}).status_code == 200
    drafter.http.get("/api/v1/cases")
    sup.http.get(f"/api/v1/cases/{case['id']}")
    assert outsider.http.get(f"/api/v1/cases/{case['id']}").status_code == 404

    title = {"X-Kinko-Title": quote("仕様書.txt", safe=""), "Content-Type": "text/plain"}
    created = drafter.http.post(
        f"/api/v1/cases/{case['id']}/documents",
        params={"class": "specification"},
        content=b"v1",
        headers=title,
    )
    assert created.status_code == 201
    doc = created.json()["id"]
    path = f"/api/v1/documents/{doc}"
    assert drafter.http.put(
        f"{path}/content", content=b"v2", headers={"If-Match": '"1"'}
    ).is_success
    assert (
        drafter.http.put(f"{path}/content", content=b"v3", headers={"If-Match": '"1"'}).status_code
        == 412
    )
    drafter.http.get(f"/api/v1/cases/{case['id']}/documents")
    drafter.http.get(path)
    assert drafter.http.get(f"{path}/access").status_code == 403
    sup.http.get(f"{path}/access")
    assert drafter.http.get(f"{path}/content").status_code == 400
    assert drafter.http.get(f"{path}/content", headers=purpose).status_code == 200
    assert drafter.http.head(f"{path}/content", headers=purpose).status_code == 200
    assert auditor.http.get(f"{path}/content", headers=purpose).status_code == 403
    assert anon.http.get(f"{path}/content").status_code == 404
    assert drafter.http.post(f"{path}/final", json={"version": 2}).status_code == 200
    transitions = f"/api/v1/cases/{case['id']}/transitions"
    assert sup.http.post(transitions, json={"stage": "announced"}).status_code == 201
    assert sup.http.post(transitions, json={"stage": "rfi"}).status_code == 409
    anon.http.get("/api/v1/public/documents")
    assert anon.http.get(f"/api/v1/public/documents/{doc}/content").status_code == 200
    assert anon.http.head(f"/api/v1/public/documents/{doc}/content").status_code == 200
    assert anon.http.get(f"/api/v1/public/documents/{'0' * 32}/content").status_code == 404

    auditor.http.get("/api/v1/audit/events", params={"limit": "5"})
    assert auditor.http.get("/api/v1/audit/events", params={"limit": "x"}).status_code == 400
    auditor.http.get("/api/v1/audit/checkpoint")
    auditor.http.get("/api/v1/audit/public-key")
    auditor.http.get("/api/v1/audit/proofs/inclusion", params={"seq": "0", "size": "1"})
    auditor.http.get("/api/v1/audit/proofs/consistency", params={"old": "1", "new": "2"})
    assert drafter.http.get("/api/v1/audit/events").status_code == 403
    pending = auditor.http.get("/api/v1/reviews").json()["items"]
    auditor.http.get("/api/v1/reviews/report")
    auditor.http.get("/api/v1/reviews/coverage")
    mine = next(i for i in pending if i["document_id"] == doc)
    decision = {"verdict": "confirmed", "note": "ok"}
    assert auditor.http.post(f"/api/v1/reviews/{mine['seq']}", json=decision).status_code == 200
    assert auditor.http.post(f"/api/v1/reviews/{mine['seq']}", json=decision).status_code == 409
    drafter.http.get("/api/v1/sync/manifest")
    remove = f"/api/v1/cases/{case['id']}/members/oa-outsider-{tag}"
    assert admin.http.delete(remove).status_code == 404

    covered = {(m, t) for m, t, _ in check.checked}
    assert len(covered) >= 35, sorted(covered)
    assert {s for _, _, s in check.checked} >= {200, 201, 204, 400, 401, 403, 404, 409, 412, 422}


@pytest.mark.suite_end
def test_every_status_the_suite_saw_is_declared() -> None:
    """Every answer any test's client got has its status among the operation's responses."""
    checker = Checker(create_app().openapi())
    undeclared: dict[tuple[str, str, int], int] = {}
    for method, path, status in SEEN_RESPONSES:
        found = checker.operation(method, path)
        if found is None:
            continue  # a path or method the API does not have (tests of 404/405 routing)
        template, op = found
        if str(status) not in op["responses"]:
            undeclared[(method, template, status)] = (
                undeclared.get((method, template, status), 0) + 1
            )
    assert SEEN_RESPONSES, "the suite's clients recorded nothing"
    assert not undeclared, f"statuses answered but not declared: {undeclared}"
