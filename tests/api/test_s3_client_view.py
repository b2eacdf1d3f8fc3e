"""What a real S3 client (rclone) sees in the bucket: random names and ciphertext only."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import KinkoServer, make_server, require_tool
from s3_support import (  # noqa: F401  (fixtures are found by pytest through the import)
    _moto_endpoint,
    _s3_client,
    aws_env_for_subprocess,
    new_bucket,
)

MARKER = "入札予定価格-MARKER-7f3a"
TITLE = "予定価格調書（秘）.xlsx"


@pytest.fixture(scope="module")
def populated(
    tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str, s3_client: Any
) -> Iterator[tuple[KinkoServer, str, str]]:
    bucket = new_bucket(s3_client)
    srv = make_server(
        tmp_path_factory.mktemp("rclone"),
        KINKO_STORAGE="s3",
        KINKO_S3_BUCKET=bucket,
        KINKO_S3_ENDPOINT_URL=moto_endpoint,
        KINKO_S3_PREFIX="vault/",
        **aws_env_for_subprocess(),
    )
    srv.start()
    officer = srv.user("rclone-officer", ["procurement"])
    case = officer.create_case("RCLONE-1", "クライアント確認")
    doc = officer.create_document(
        case["id"], "estimated_price", TITLE, (MARKER + "\n").encode() * 500
    )
    officer.put_content(doc["id"], (MARKER + " v2\n").encode() * 200_000)  # about 6 MiB
    try:
        yield srv, bucket, moto_endpoint
    finally:
        srv.close_clients()
        srv.stop()


def _rclone(endpoint: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    rclone = require_tool("rclone")
    aws = aws_env_for_subprocess()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))},
        # An on-the-fly remote called "moto", configured from the environment only.
        "RCLONE_CONFIG_MOTO_TYPE": "s3",
        "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
        "RCLONE_CONFIG_MOTO_ENDPOINT": endpoint,
        "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": aws["AWS_ACCESS_KEY_ID"],
        "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": aws["AWS_SECRET_ACCESS_KEY"],
        "RCLONE_CONFIG_MOTO_REGION": aws["AWS_DEFAULT_REGION"],
        "RCLONE_CONFIG": "/dev/null",
    }
    return subprocess.run([rclone, *args], capture_output=True, env=env, timeout=120, check=True)


def test_rclone_lists_only_random_names(populated: tuple[KinkoServer, str, str]) -> None:
    _srv, bucket, endpoint = populated
    listing = _rclone(endpoint, "lsf", "-R", f"moto:{bucket}").stdout.decode().split()
    files = [entry for entry in listing if not entry.endswith("/")]
    assert len(files) == 2
    for entry in files:
        assert re.fullmatch(r"vault/[0-9a-f]{32}", entry), entry


def test_rclone_sees_only_ciphertext(
    populated: tuple[KinkoServer, str, str], tmp_path: Path
) -> None:
    _srv, bucket, endpoint = populated
    _rclone(endpoint, "copy", f"moto:{bucket}", str(tmp_path / "copy"))
    blobs = [p for p in (tmp_path / "copy").rglob("*") if p.is_file()]
    assert len(blobs) == 2
    needles = [
        MARKER.encode(),
        TITLE.encode(),
        quote(TITLE).encode(),
        "クライアント確認".encode(),
    ]
    for blob in blobs:
        raw = blob.read_bytes()
        assert raw[:4] == b"KNKS"  # every object is a Kinko ciphertext stream
        for needle in needles:
            assert needle not in raw
