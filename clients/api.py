"""A small synchronous Python client for the Kinko API, over httpx."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

import httpx


class KinkoHTTPError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _raise_for(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    try:
        err = resp.json()["error"]
        code, message = err["code"], err["message"]
    except Exception:
        code, message = "http_error", resp.text[:200]
    raise KinkoHTTPError(resp.status_code, code, message)


class KinkoClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        device: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if device:
            headers["X-Kinko-Device"] = device
        self.http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> KinkoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.http.request(method, path, **kw)
        _raise_for(resp)
        return resp.json() if resp.content else None

    # users
    def me(self) -> dict[str, Any]:
        return dict(self._json("GET", "/api/v1/me"))

    def create_user(
        self, name: str, roles: list[str] | None = None, display_name: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "roles": roles or []}
        if display_name is not None:
            body["display_name"] = display_name
        return dict(self._json("POST", "/api/v1/users", json=body))

    def create_token(self, name: str, ttl_seconds: int | None = None) -> dict[str, Any]:
        body = {} if ttl_seconds is None else {"ttl_seconds": ttl_seconds}
        return dict(self._json("POST", f"/api/v1/users/{name}/tokens", json=body))

    # cases
    def create_case(self, number: str, title: str) -> dict[str, Any]:
        return dict(self._json("POST", "/api/v1/cases", json={"number": number, "title": title}))

    def case(self, case_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/cases/{case_id}"))

    def set_member(
        self, case_id: str, name: str, roles: list[str], expires_at: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"roles": roles}
        if expires_at is not None:
            body["expires_at"] = expires_at
        return dict(self._json("PUT", f"/api/v1/cases/{case_id}/members/{name}", json=body))

    def transition(self, case_id: str, stage: str, at: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"stage": stage}
        if at is not None:
            body["at"] = at
        return dict(self._json("POST", f"/api/v1/cases/{case_id}/transitions", json=body))

    # documents
    def create_document(
        self,
        case_id: str,
        cls: str,
        title: str,
        content: bytes | Iterable[bytes],
        *,
        idempotency_key: str | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        headers = {"X-Kinko-Title": quote(title, safe="")}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if content_type:
            headers["Content-Type"] = content_type
        return dict(
            self._json(
                "POST",
                f"/api/v1/cases/{case_id}/documents",
                params={"class": cls},
                content=content,
                headers=headers,
            )
        )

    def put_content(
        self,
        doc_id: str,
        content: bytes | Iterable[bytes],
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        headers = {}
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if content_type:
            headers["Content-Type"] = content_type
        return dict(
            self._json(
                "PUT", f"/api/v1/documents/{doc_id}/content", content=content, headers=headers
            )
        )

    def finalize(self, doc_id: str, version: int) -> dict[str, Any]:
        return dict(
            self._json("POST", f"/api/v1/documents/{doc_id}/final", json={"version": version})
        )

    def documents(self, case_id: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/api/v1/cases/{case_id}/documents")["documents"])

    def document(self, doc_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/documents/{doc_id}"))

    def read(self, doc_id: str, purpose: str | None, version: int | None = None) -> bytes:
        return b"".join(self.iter_read(doc_id, purpose, version))

    def iter_read(
        self,
        doc_id: str,
        purpose: str | None,
        version: int | None = None,
        chunk_size: int = 1 << 20,
    ) -> Iterator[bytes]:
        headers = {}
        if purpose is not None:
            headers["X-Access-Purpose"] = quote(purpose, safe="")
        params = {} if version is None else {"version": str(version)}
        with self.http.stream(
            "GET", f"/api/v1/documents/{doc_id}/content", headers=headers, params=params
        ) as resp:
            if not resp.is_success:
                resp.read()
                _raise_for(resp)
            yield from resp.iter_bytes(chunk_size)

    # sync
    def manifest(self, etag: str | None = None) -> tuple[dict[str, Any] | None, str]:
        """``GET /api/v1/sync/manifest``: (body, ETag); body is None on 304 Not Modified."""
        headers = {} if etag is None else {"If-None-Match": etag}
        resp = self.http.get("/api/v1/sync/manifest", headers=headers)
        if resp.status_code == 304:
            return None, resp.headers.get("ETag", etag or "")
        _raise_for(resp)
        return dict(resp.json()), resp.headers.get("ETag", "")

    def public_documents(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/v1/public/documents")["documents"])

    def audit_events(self, **filters: Any) -> dict[str, Any]:
        params = {k: str(v) for k, v in filters.items() if v is not None}
        return dict(self._json("GET", "/api/v1/audit/events", params=params))
