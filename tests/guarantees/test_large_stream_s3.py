"""Guarantee (SPEC §7) on the S3 backend: a 1 GiB round trip keeps the server's memory flat.

Same check as ``test_large_stream.py``, with the Kinko server storing its blobs in S3 (moto's
``ThreadedMotoServer`` over HTTP on loopback, see ``tests/s3_support.py``): a 1 GiB document is
uploaded from a generator (the server sends it on as an 8 MiB-part multipart upload) and
downloaded as a stream (the server streams the object body back), hashed on the fly on both
sides, while the Kinko server's RSS is sampled every 50 ms.  Peak RSS must stay under
200 MiB.  moto keeps the objects in memory in *this* (the test) process; only the Kinko server
process (and its children) is measured.  The bucket is emptied and deleted afterwards so that
the 1 GiB object does not stay in moto's memory for the rest of the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import KinkoServer, make_server
from guarantee_support import assert_gib_round_trip_flat
from s3_support import (  # noqa: F401  (fixtures are found by pytest through the import)
    _moto_endpoint,
    _s3_client,
    all_keys,
    aws_env_for_subprocess,
    new_bucket,
    open_uploads,
)

PREFIX = "blobs/"


def _empty_bucket(client: Any, bucket: str) -> None:
    for upload in open_uploads(client, bucket):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for key in all_keys(client, bucket):
        client.delete_object(Bucket=bucket, Key=key)
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_server(tmp_path: Path, moto_endpoint: str, s3_client: Any) -> Iterator[KinkoServer]:
    bucket = new_bucket(s3_client)
    srv = make_server(
        tmp_path,
        KINKO_STORAGE="s3",
        KINKO_S3_BUCKET=bucket,
        KINKO_S3_ENDPOINT_URL=moto_endpoint,
        KINKO_S3_PREFIX=PREFIX,
        **aws_env_for_subprocess(),
    )
    try:
        srv.start(timeout=60)
        yield srv
    finally:
        srv.close_clients()
        srv.stop()
        _empty_bucket(s3_client, bucket)


@pytest.mark.slow
def test_one_gib_round_trip_through_s3_memory_stays_flat(s3_server: KinkoServer) -> None:
    srv = s3_server
    assert_gib_round_trip_flat(srv, "S3 backend")
    # Nothing of the 1 GiB went to the local data directory.
    blob_dir = srv.data_dir / "blobs"
    assert not blob_dir.exists() or not any(p.is_file() for p in blob_dir.rglob("*"))
