"""A real Kinko server storing its blobs in S3 (moto's server over HTTP on loopback)."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import KinkoServer, make_server
from s3_support import (  # noqa: F401  (fixtures are found by pytest through the import)
    _moto_endpoint,
    _s3_bucket,
    _s3_client,
    all_keys,
    aws_env_for_subprocess,
    new_bucket,
    open_uploads,
)

PREFIX = "blobs/"
PURPOSE = "s3 backend test"
KEY_RE = re.compile(r"blobs/[0-9a-f]{32}")
MIB = 1 << 20


def _s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {
        "KINKO_STORAGE": "s3",
        "KINKO_S3_BUCKET": bucket,
        "KINKO_S3_ENDPOINT_URL": endpoint,
        "KINKO_S3_PREFIX": PREFIX,
        **aws_env_for_subprocess(),
    }


@pytest.fixture(scope="module")
def s3_setup(
    tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str, s3_client: Any
) -> Iterator[tuple[KinkoServer, str]]:
    bucket = new_bucket(s3_client)
    srv = make_server(tmp_path_factory.mktemp("kinko-s3"), **_s3_env(moto_endpoint, bucket))
    srv.start()
    try:
        yield srv, bucket
    finally:
        srv.close_clients()
        srv.stop()


def _body(marker: bytes, size: int) -> bytes:
    body = bytearray(os.urandom(size))
    body[: len(marker)] = marker
    body[size // 2 : size // 2 + len(marker)] = marker
    body += (marker + b" ") * 100  # a repetitive tail a dedup or compressor would keep
    return bytes(body)


def test_documents_round_trip_through_s3(s3_setup: tuple[KinkoServer, str], s3_client: Any) -> None:
    srv, bucket = s3_setup
    tag = secrets.token_hex(4)
    client = srv.user(f"drafter-{tag}", ["procurement"])
    case_id = client.create_case(f"S3-{tag}", f"S3 case {tag}")["id"]

    title = f"予定価格調書 S3 {tag} (極秘)"
    markers = [f"KINKO-S3-MARKER-{tag}-{v}".encode() for v in range(1, 4)]
    # v2 is 20 MiB: far above the 8 MiB part size, so it is a multipart upload.
    versions = [
        _body(markers[0], 200_000),
        _body(markers[1], 20 * MIB),
        _body(markers[2], 1),
    ]
    doc = client.create_document(case_id, "specification", title, versions[0])
    # The big version is streamed in 1 MiB pieces, as a real client would.
    big = versions[1]
    client.put_content(doc["id"], (big[i : i + MIB] for i in range(0, len(big), MIB)))
    client.put_content(doc["id"], versions[2])

    for number, expected in enumerate(versions, start=1):
        assert client.read(doc["id"], PURPOSE, number) == expected
    assert client.read(doc["id"], PURPOSE) == versions[2]

    keys = all_keys(s3_client, bucket)
    assert len(keys) >= 3
    assert all(KEY_RE.fullmatch(key) for key in keys), keys
    assert open_uploads(s3_client, bucket) == []
    # The 20 MiB version went through a multipart upload (its ETag counts the parts).
    etags = [s3_client.head_object(Bucket=bucket, Key=key)["ETag"] for key in keys]
    assert any(re.search(r"-\d+\"?$", etag) for etag in etags), etags
    # Nothing stored locally: the data directory has no blob files.
    blob_dir = srv.data_dir / "blobs"
    assert not blob_dir.exists() or not any(p.is_file() for p in blob_dir.rglob("*"))

    needles = [*markers, title.encode(), quote(title, safe="").encode(), tag.encode()]
    for key in keys:
        assert tag not in key
        raw = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for needle in needles:
            assert needle not in raw, (key, needle[:40])


def test_server_refuses_to_start_without_bucket(tmp_path: Path, moto_endpoint: str) -> None:
    bucket = "kinko-missing-" + secrets.token_hex(4)
    srv = make_server(tmp_path, **_s3_env(moto_endpoint, bucket))
    with pytest.raises(RuntimeError, match="server exited early") as info:
        srv.start(timeout=60)
    assert srv.proc is not None
    assert srv.proc.returncode not in (0, None)
    assert bucket in str(info.value)
    assert "does not exist" in str(info.value)
