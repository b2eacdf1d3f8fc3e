"""WORM checkpoints: every signed checkpoint is also kept under S3 Object Lock (compliance)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3_support import (  # noqa: F401  (fixtures are found by pytest through the import)
    _moto_endpoint,
    _s3_client,
    aws_env_for_subprocess,
)

from tests.audit_support import rewrite_history
from tests.conftest import ROOT, KinkoServer, make_server, run_kinko
from vault.audit.note import NoteSigner

BUCKET = "kinko-anchors"


@pytest.fixture(scope="module")
def anchored(
    tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str, s3_client: Any
) -> Iterator[tuple[KinkoServer, Any]]:
    s3_client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    srv = make_server(
        tmp_path_factory.mktemp("worm"),
        KINKO_AUDIT_ANCHOR_BUCKET=BUCKET,
        KINKO_S3_ENDPOINT_URL=moto_endpoint,
        KINKO_CHECKPOINT_INTERVAL_SECONDS="1",
        **aws_env_for_subprocess(),
    )
    srv.start()
    try:
        yield srv, s3_client
    finally:
        srv.close_clients()
        srv.stop()


def kinko(srv: KinkoServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(srv.env)
    env.pop("KINKO_BOOTSTRAP_TOKEN", None)
    result = run_kinko(*args, env=env)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def _anchored_keys(s3: Any) -> list[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="kinko-checkpoints/")
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_checkpoints_are_anchored_under_compliance_lock(
    anchored: tuple[KinkoServer, Any],
) -> None:
    srv, s3 = anchored
    officer = srv.user("worm-officer", ["procurement"])
    officer.create_case("WORM-1", "anchor")
    kinko(srv, "audit", "checkpoint", "--data-dir", str(srv.data_dir))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(_anchored_keys(s3)) < 2:
        officer.me()
        time.sleep(0.3)
    keys = _anchored_keys(s3)
    assert len(keys) >= 2, keys
    head = s3.head_object(Bucket=BUCKET, Key=keys[0])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"].year >= time.gmtime().tm_year + 9
    # The operator cannot remove an anchored checkpoint while it is retained.
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=BUCKET, Key=keys[0], VersionId=head["VersionId"])
    body = s3.get_object(Bucket=BUCKET, Key=keys[-1])["Body"].read().decode()
    signer = NoteSigner.from_private_key((srv.data_dir / "audit-signing.key").read_text().strip())
    assert signer.verifier().verify(body).startswith(signer.name + "\n")


@pytest.mark.slow
def test_anchored_checkpoints_catch_a_rewrite_signed_with_the_real_key(
    anchored: tuple[KinkoServer, Any], tmp_path: Path
) -> None:
    srv, _ = anchored
    officer = srv.user("worm-officer2", ["procurement"])
    case = officer.create_case("WORM-2", "anchor")
    doc = officer.create_document(case["id"], "budget", "予算", b"100")
    officer.read(doc["id"], "確認")
    kinko(srv, "audit", "checkpoint", "--data-dir", str(srv.data_dir))
    bundle = tmp_path / "bundle"
    kinko(srv, "audit", "export", "--out", str(bundle), "--data-dir", str(srv.data_dir))
    key = tmp_path / "vkey"
    key.write_text(kinko(srv, "audit", "public-key", "--data-dir", str(srv.data_dir)).stdout)
    genuine = kinko(srv, "audit", "verify", str(bundle), "--key", str(key), "--anchored")
    assert "OK" in genuine.stdout

    signer = NoteSigner.from_private_key((srv.data_dir / "audit-signing.key").read_text().strip())

    def rewrite(events: list[dict[str, Any]]) -> None:
        read = next(e for e in events if e["action"] == "document.read" and e["purpose"])
        read["purpose"] = "rewritten afterwards"

    rewrite_history(bundle, signer, rewrite)
    alone = kinko(srv, "audit", "verify", str(bundle), "--key", str(key), "--json")
    assert json.loads(alone.stdout)["ok"] is True
    caught = kinko(
        srv, "audit", "verify", str(bundle), "--key", str(key), "--anchored", "--json", check=False
    )
    assert caught.returncode == 1
    kinds = {f["kind"] for f in json.loads(caught.stdout)["findings"]}
    assert "inconsistent_with_trusted" in kinds


def test_server_refuses_an_anchor_bucket_without_object_lock(
    anchored: tuple[KinkoServer, Any], tmp_path: Path
) -> None:
    srv, s3 = anchored
    s3.create_bucket(Bucket="no-lock-here")
    env = dict(srv.env)
    env["KINKO_AUDIT_ANCHOR_BUCKET"] = "no-lock-here"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vault.cli.main",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "no-lock-here" in result.stdout + result.stderr
    assert os.path.exists(tmp_path / "d")
