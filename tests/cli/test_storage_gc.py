"""``kinko storage gc``: through the real command, on a real data directory and on moto's S3.

Each test writes documents through a real server (so the catalog references real blobs),
stops it, plants orphans beside them, and runs the command as an operator would.  Ages are
made with ``os.utime`` on local blob files; S3 objects cannot be backdated, so there the grace
period is shown with the default (fresh orphans spared) and then ``--grace-hours 0``.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from s3_support import (  # noqa: F401  (fixtures are found by pytest through the import)
    _moto_endpoint,
    _s3_client,
    all_keys,
    aws_env_for_subprocess,
    new_bucket,
)

from tests.conftest import ROOT, KinkoServer, make_server, run_kinko
from vault.storage import LocalBlobStore
from vault.storage.s3 import S3BlobStore

PURPOSE = "storage gc check"
DAY = 24 * 3600


def _kinko(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_kinko(*args, env=env)


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KINKO_", "AWS_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _object_file(blob_dir: Path, name: str) -> Path:
    return blob_dir / "objects" / name[0:2] / name[2:4] / name


def _plant(store: Any, data: bytes) -> str:
    with store.writer() as writer:
        writer.write(data)
        name: str = writer.commit()
    return name


def _age(blob_dir: Path, name: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(_object_file(blob_dir, name), (then, then))


def _server_with_one_document(tmp_path: Path, **env: str) -> tuple[KinkoServer, str, str]:
    """A stopped server whose catalog holds one document; returns (server, doc id, case id)."""
    srv = make_server(tmp_path, **env)
    srv.start()
    officer = srv.user("gc-officer", ["procurement"])
    case = officer.create_case("GC-1", "ごみ集め")
    doc = officer.create_document(case["id"], "budget", "予算", b"referenced content")
    srv.close_clients()
    srv.stop()
    return srv, doc["id"], case["id"]


def _gc_events(srv: KinkoServer) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = srv.user("gc-auditor", ["auditor"]).audit_events(
        action="storage.gc"
    )["events"]
    return events


@pytest.mark.slow
def test_gc_lists_then_deletes_only_old_orphans_on_local_storage(tmp_path: Path) -> None:
    srv, doc_id, _case = _server_with_one_document(tmp_path, KINKO_STORAGE="local")
    blob_dir = srv.data_dir / "blobs"
    store = LocalBlobStore(blob_dir)
    (referenced,) = store.names()
    old_orphan = _plant(store, b"x" * 1234)
    fresh_orphan = _plant(store, b"left by an upload still in flight")
    # The referenced blob is old too: only the catalog reference saves it, not its age.
    _age(blob_dir, referenced, 3 * DAY)
    _age(blob_dir, old_orphan, 2 * DAY)
    _age(blob_dir, fresh_orphan, 23 * 3600)  # inside the default 24 hours
    env = _cli_env()

    dry = _kinko(env, "storage", "gc", "--data-dir", str(srv.data_dir))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert old_orphan in dry.stdout
    assert fresh_orphan not in dry.stdout
    assert referenced not in dry.stdout
    assert "would delete 1 blobs (1234 bytes)" in dry.stdout
    assert "1 unreferenced blobs younger than 24 hours were left alone" in dry.stdout
    assert set(store.names()) == {referenced, old_orphan, fresh_orphan}  # a dry run deletes nothing

    done = _kinko(env, "storage", "gc", "--delete", "--data-dir", str(srv.data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deleted 1 blobs (1234 bytes)" in done.stdout
    assert set(store.names()) == {referenced, fresh_orphan}

    again = _kinko(env, "storage", "gc", "--delete", "--data-dir", str(srv.data_dir))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "deleted 0 blobs (0 bytes)" in again.stdout

    srv.start()
    try:
        # Exactly one event: the dry run and the run with nothing to delete record none.
        (event,) = _gc_events(srv)
        assert event["reason"] == "deleted=1 bytes=1234"
        assert event["client"]["user_agent"] == "kinko storage gc"
        assert srv.user("gc-officer").read(doc_id, PURPOSE) == b"referenced content"
    finally:
        srv.close_clients()
        srv.stop()


def test_gc_refuses_a_directory_without_a_catalog(tmp_path: Path) -> None:
    # With no catalog every blob would look unreferenced: the command must not guess.
    store = LocalBlobStore(tmp_path / "d" / "blobs")
    name = _plant(store, b"whose is this?")
    _age(tmp_path / "d" / "blobs", name, 3 * DAY)
    result = _kinko(_cli_env(), "storage", "gc", "--delete", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert "no vault" in result.stderr
    assert list(store.names()) == [name]


@pytest.mark.slow
def test_gc_on_s3_spares_fresh_orphans_then_deletes_them_with_no_grace(
    tmp_path: Path, moto_endpoint: str, s3_client: Any
) -> None:
    bucket = new_bucket(s3_client)
    s3_env = {
        **aws_env_for_subprocess(),
        "KINKO_STORAGE": "s3",
        "KINKO_S3_BUCKET": bucket,
        "KINKO_S3_PREFIX": "blobs/",
        "KINKO_S3_ENDPOINT_URL": moto_endpoint,
    }
    srv, doc_id, _case = _server_with_one_document(tmp_path, **s3_env)
    (referenced_key,) = all_keys(s3_client, bucket)
    store = S3BlobStore.connect(bucket=bucket, prefix="blobs/", endpoint_url=moto_endpoint)
    orphan = _plant(store, b"s" * 321)
    env = _cli_env(**s3_env)

    # Just written, so inside the default grace period: listed as spared, never as a candidate.
    dry = _kinko(env, "storage", "gc", "--delete", "--data-dir", str(srv.data_dir))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert orphan not in dry.stdout
    assert "1 unreferenced blobs younger than 24 hours were left alone" in dry.stdout
    assert "deleted 0 blobs (0 bytes)" in dry.stdout
    assert sorted(all_keys(s3_client, bucket)) == sorted([referenced_key, f"blobs/{orphan}"])

    time.sleep(1.1)  # S3 times have whole seconds: let the objects be strictly in the past
    done = _kinko(
        env, "storage", "gc", "--delete", "--grace-hours", "0", "--data-dir", str(srv.data_dir)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{orphan}           321" in done.stdout
    assert "deleted 1 blobs (321 bytes)" in done.stdout
    assert all_keys(s3_client, bucket) == [referenced_key]

    srv.start()
    try:
        (event,) = _gc_events(srv)
        assert event["reason"] == "deleted=1 bytes=321"
        assert srv.user("gc-officer").read(doc_id, PURPOSE) == b"referenced content"
    finally:
        srv.close_clients()
        srv.stop()


@pytest.mark.slow
def test_gc_after_migration_collects_on_s3_and_on_the_old_local_store(
    tmp_path: Path, moto_endpoint: str, s3_client: Any
) -> None:
    srv, doc_id, _case = _server_with_one_document(tmp_path, KINKO_STORAGE="local")
    blob_dir = srv.data_dir / "blobs"
    local = LocalBlobStore(blob_dir)
    (referenced,) = local.names()
    orphan = _plant(local, b"o" * 100)
    _age(blob_dir, orphan, 2 * DAY)
    _age(blob_dir, referenced, 2 * DAY)

    bucket = new_bucket(s3_client)
    env = _cli_env(
        **aws_env_for_subprocess(),
        KINKO_S3_BUCKET=bucket,
        KINKO_S3_PREFIX="blobs/",
        KINKO_S3_ENDPOINT_URL=moto_endpoint,
    )
    migrated = _kinko(env, "storage", "migrate", "--to", "s3", "--data-dir", str(srv.data_dir))
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    # Migration copies every blob, orphans included: each now exists on both stores.
    assert sorted(all_keys(s3_client, bucket)) == sorted(f"blobs/{n}" for n in (referenced, orphan))

    # The server now runs on S3 with the local store as fallback, and so does the command.
    # The S3 copies were just written, so with the default grace only the old local copy
    # of the orphan is a candidate.
    dry = _kinko(env, "storage", "gc", "--data-dir", str(srv.data_dir))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    lines = [line for line in dry.stdout.splitlines() if orphan in line]
    assert len(lines) == 1
    assert lines[0].endswith("local")
    assert referenced not in dry.stdout
    assert "would delete 1 blobs (100 bytes)" in dry.stdout
    assert "1 unreferenced blobs younger than 24 hours were left alone" in dry.stdout

    time.sleep(1.1)  # S3 times have whole seconds: let the copies be strictly in the past
    done = _kinko(
        env, "storage", "gc", "--delete", "--grace-hours", "0", "--data-dir", str(srv.data_dir)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"s3://{bucket}/blobs/" in done.stdout
    assert "deleted 2 blobs (200 bytes)" in done.stdout
    assert all_keys(s3_client, bucket) == [f"blobs/{referenced}"]
    assert list(local.names()) == [referenced]

    srv.env.pop("KINKO_STORAGE")
    srv.env.update(aws_env_for_subprocess())
    srv.start()
    try:
        (event,) = _gc_events(srv)
        assert event["reason"] == "deleted=2 bytes=200"
        assert srv.user("gc-officer").read(doc_id, PURPOSE) == b"referenced content"
    finally:
        srv.close_clients()
        srv.stop()
