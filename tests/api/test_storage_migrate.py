"""``kinko storage migrate --to s3``: copy, verify, resume after an interruption, switch over."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, KinkoServer, make_server, run_kinko
from s3_support import (  # noqa: F401  (fixtures are found by pytest through the import)
    _moto_endpoint,
    _s3_client,
    all_keys,
    aws_env_for_subprocess,
    new_bucket,
)

import vault.storage.migrate as migrate_module
from vault.storage import LocalBlobStore
from vault.storage.s3 import S3BlobStore

PURPOSE = "migration check"


def _kinko(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_kinko(*args, env=env, timeout=300)


@pytest.mark.slow
def test_interrupted_migration_resumes_without_copying_twice(
    tmp_path: Path, moto_endpoint: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The vault starts on local storage whatever the suite's storage is: that is what moves.
    srv = make_server(tmp_path, KINKO_STORAGE="local")
    srv.start()
    officer = srv.user("mig-officer", ["procurement"])
    case = officer.create_case("MIG-1", "移行")
    bodies: dict[str, bytes] = {}
    for i in range(6):
        body = os.urandom(1000 + i) if i != 3 else os.urandom(7 * 1024 * 1024)
        doc = officer.create_document(case["id"], "budget", f"予算{i}", body)
        bodies[doc["id"]] = body
    srv.close_clients()
    srv.stop()

    bucket = new_bucket(s3_client)
    source = LocalBlobStore(srv.data_dir / "blobs")
    local_names = sorted(source.names())
    assert len(local_names) == 6
    dest = S3BlobStore.connect(bucket=bucket, prefix="blobs/", endpoint_url=moto_endpoint)

    # First run: interrupted after three blobs (as a crash or Ctrl-C would).
    real_copy = migrate_module.copy_blob
    calls: list[str] = []

    def copy_then_die(src: Any, dst: Any, name: str) -> tuple[bool, int]:
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(name)
        return real_copy(src, dst, name)

    monkeypatch.setattr(migrate_module, "copy_blob", copy_then_die)
    with pytest.raises(KeyboardInterrupt):
        migrate_module.migrate(source, dest)
    assert len(all_keys(s3_client, bucket)) == 3
    monkeypatch.setattr(migrate_module, "copy_blob", real_copy)

    # Second run, through the real command: the three already there are verified, not copied.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KINKO_", "AWS_"))}
    env.update(aws_env_for_subprocess())
    env.update(
        PYTHONPATH=str(ROOT),
        KINKO_S3_BUCKET=bucket,
        KINKO_S3_PREFIX="blobs/",
        KINKO_S3_ENDPOINT_URL=moto_endpoint,
    )
    result = _kinko(env, "storage", "migrate", "--to", "s3", "--data-dir", str(srv.data_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 copied now, 3 were already there and verified" in result.stderr
    keys = sorted(all_keys(s3_client, bucket))
    assert keys == sorted(f"blobs/{n}" for n in local_names)  # each exactly once
    for name in local_names:
        assert migrate_module._digest(dest, name) == migrate_module._digest(source, name)

    # Switched over: restarted without KINKO_STORAGE, the server reads and writes S3.
    del srv.env["KINKO_STORAGE"]
    srv.env.update(aws_env_for_subprocess())
    srv.start()
    reader = srv.user("mig-officer")
    for doc_id, body in bodies.items():
        assert reader.read(doc_id, PURPOSE) == body
    reader.create_document(case["id"], "budget", "after", b"written after the switch")
    assert len(all_keys(s3_client, bucket)) == 7
    assert sorted(source.names()) == local_names  # nothing new on the local store
    events = srv.user("mig-auditor", ["auditor"]).audit_events(action="storage.migrate")
    assert len(events["events"]) == 1
    srv.close_clients()
    srv.stop()


@pytest.mark.slow
def test_blob_left_on_local_store_stays_readable_after_switch(
    tmp_path: Path, moto_endpoint: str, s3_client: Any
) -> None:
    """A blob written locally after the last pass is read through the fallback."""
    srv: KinkoServer = make_server(tmp_path, KINKO_STORAGE="local")
    srv.start()
    officer = srv.user("late-officer", ["procurement"])
    case = officer.create_case("MIG-2", "late")
    early = officer.create_document(case["id"], "budget", "early", b"early")
    bucket = new_bucket(s3_client)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KINKO_", "AWS_"))}
    env.update(aws_env_for_subprocess())
    env.update(PYTHONPATH=str(ROOT), KINKO_S3_BUCKET=bucket, KINKO_S3_ENDPOINT_URL=moto_endpoint)
    # The server keeps running during the migration, as SPEC §9 allows.
    result = _kinko(env, "storage", "migrate", "--to", "s3", "--data-dir", str(srv.data_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    late = officer.create_document(case["id"], "budget", "late", b"late, still local")
    srv.close_clients()
    srv.stop()
    del srv.env["KINKO_STORAGE"]
    srv.env.update(aws_env_for_subprocess())
    srv.start()
    reader = srv.user("late-officer")
    assert reader.read(early["id"], PURPOSE) == b"early"
    assert reader.read(late["id"], PURPOSE) == b"late, still local"
    srv.close_clients()
    srv.stop()
