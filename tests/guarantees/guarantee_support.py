"""Helpers shared by the guarantee tests (real server, raw HTTP, raw files)."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

from clients import KinkoClient

PURPOSE = "guarantee test: integrity check"


def purpose_header(purpose: str = PURPOSE) -> dict[str, str]:
    return {"X-Access-Purpose": quote(purpose, safe="")}


def new_case(srv: object, *, title: str | None = None) -> tuple[KinkoClient, str]:
    """A fresh procurement user (drafter of a new case); returns (client, case_id)."""
    tag = secrets.token_hex(4)
    client = srv.user(f"drafter-{tag}", ["procurement"])  # type: ignore[attr-defined]
    case = client.create_case(f"G-{tag}", title or f"guarantee case {tag}")
    return client, case["id"]


@dataclass
class ReadOutcome:
    """What a client actually received for one content read."""

    status: int | None
    declared_length: int | None
    body: bytes
    broken: str | None  # transport error raised while receiving (stream cut off)
    error_code: str | None

    @property
    def complete(self) -> bool:
        """The full declared body arrived and the stream ended cleanly."""
        return (
            self.status == 200
            and self.broken is None
            and self.declared_length is not None
            and len(self.body) == self.declared_length
        )

    def failed(self, original: bytes) -> bool:
        """The read did not hand over the document as a clean, complete 200."""
        return not self.complete or self.body != original


def read_outcome(
    client: KinkoClient,
    doc_id: str,
    version: int | None = None,
    timeout: float = 60.0,
    *,
    reuse: bool = False,
) -> ReadOutcome:
    """One content read.  By default on a new connection, so that what an earlier failed
    request did to a kept-alive connection cannot disturb this one."""
    if reuse:
        return _read_outcome(client.http, doc_id, version, timeout)
    with httpx.Client(base_url=client.http.base_url, headers=client.http.headers) as http:
        return _read_outcome(http, doc_id, version, timeout)


def _read_outcome(
    http: httpx.Client, doc_id: str, version: int | None, timeout: float
) -> ReadOutcome:
    params = {} if version is None else {"version": str(version)}
    status: int | None = None
    declared: int | None = None
    body = bytearray()
    broken: str | None = None
    code: str | None = None
    try:
        with http.stream(
            "GET",
            f"/api/v1/documents/{doc_id}/content",
            params=params,
            headers=purpose_header(),
            timeout=timeout,
        ) as resp:
            status = resp.status_code
            cl = resp.headers.get("content-length")
            declared = int(cl) if cl is not None else None
            try:
                for chunk in resp.iter_raw():
                    body += chunk
            except httpx.HTTPError as exc:
                broken = f"{type(exc).__name__}: {exc}"
    except httpx.HTTPError as exc:
        broken = broken or f"{type(exc).__name__}: {exc}"
    if status is not None and status != 200:
        try:
            code = httpx.Response(status, content=bytes(body)).json()["error"]["code"]
        except Exception:
            code = None
    return ReadOutcome(status, declared, bytes(body), broken, code)


def version_rows(data_dir: Path) -> list[tuple[str, int, str, int]]:
    """(document_id, version, blob_name, size) of every version row in the catalog."""
    with closing(sqlite3.connect(data_dir / "catalog.db", timeout=10)) as conn:
        rows = conn.execute(
            "SELECT document_id, version, blob_name, size FROM versions "
            "ORDER BY document_id, version"
        ).fetchall()
    return [(r[0], int(r[1]), r[2], int(r[3])) for r in rows]


def blob_path(data_dir: Path, name: str) -> Path:
    return data_dir / "blobs" / "objects" / name[0:2] / name[2:4] / name


def blob_of(data_dir: Path, doc_id: str, version: int) -> Path:
    for d, v, name, _size in version_rows(data_dir):
        if d == doc_id and v == version:
            path = blob_path(data_dir, name)
            assert path.is_file(), f"blob {name} of {doc_id} v{version} missing"
            return path
    raise AssertionError(f"no version row for {doc_id} v{version}")


def all_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path
