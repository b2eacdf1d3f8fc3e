"""WORM anchoring of checkpoints in S3 Object Lock (compliance mode).

Every signed checkpoint is also written to an S3 bucket with Object Lock in compliance mode:
until the retention date nobody, the bucket owner included, can delete or overwrite it.  An
operator who rewrote the log and re-signed new checkpoints would leave the anchored ones
contradicting the rewrite, and ``kinko audit verify --anchored`` checks a bundle against them.

The anchor is a copy: the database keeps every checkpoint, and a checkpoint that could not be
anchored at once (the bucket was unreachable) is anchored with the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from vault.audit.bundle import checkpoint_filename

log = logging.getLogger("kinko.audit.anchor")


class AnchorError(Exception):
    pass


class S3Anchor:
    def __init__(self, client: Any, bucket: str, prefix: str, retention_days: int) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix
        self.retention = timedelta(days=retention_days)
        self.anchored_size = 0

    @classmethod
    def connect(
        cls, bucket: str, prefix: str, retention_days: int, *, endpoint_url: str | None = None
    ) -> S3Anchor:
        """Connect and check that the bucket exists and has Object Lock enabled."""
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        # Short timeouts: anchoring runs beside the log, and an unreachable bucket should cost
        # a few seconds per attempt, not minutes (the checkpoint is retried with the next).
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 3}),
        )
        try:
            conf = client.get_object_lock_configuration(Bucket=bucket)
        except (ClientError, BotoCoreError) as exc:
            raise AnchorError(
                f"audit anchor bucket {bucket!r} is unusable (it must exist with Object Lock "
                f"enabled): {exc}"
            ) from None
        if conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise AnchorError(f"audit anchor bucket {bucket!r} does not have Object Lock enabled")
        anchor = cls(client, bucket, prefix, retention_days)
        anchor.anchored_size = max((size for size, _ in anchor._keys()), default=0)
        return anchor

    def _keys(self) -> Iterator[tuple[int, str]]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(self.prefix) :]
                if name.endswith(".note") and name[:-5].isdigit():
                    yield int(name[:-5]), obj["Key"]

    def put(self, size: int, note: str) -> None:
        """Write one checkpoint under compliance-mode retention; never overwrites."""
        from botocore.exceptions import ClientError

        until = datetime.now(UTC) + self.retention
        key = self.prefix + checkpoint_filename(size)
        try:
            self._put(key, note, until)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise
            # Another process on the same data directory (the CLI beside the server) anchored
            # this checkpoint first; the copy there must be the very same note.
            existing = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            if existing.decode() != note:
                raise AnchorError(
                    f"anchored checkpoint {key} differs from the local one: history diverged"
                ) from None
        self.anchored_size = max(self.anchored_size, size)

    def _put(self, key: str, note: str, until: datetime) -> None:
        self._client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=note.encode(),
            ContentType="text/plain; charset=utf-8",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=until,
            # Object Lock requires an integrity checksum on the upload.
            ChecksumAlgorithm="SHA256",
            IfNoneMatch="*",
        )

    def anchor_pending(self, checkpoints: list[tuple[int, str]]) -> int:
        """Anchor every checkpoint newer than the newest anchored one; returns how many."""
        done = 0
        for size, note in checkpoints:
            if size > self.anchored_size:
                self.put(size, note)
                done += 1
        return done

    def notes(self) -> list[str]:
        """Every anchored checkpoint, oldest first (for ``kinko audit verify --anchored``)."""
        out = []
        for _size, key in sorted(self._keys()):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            out.append(body.decode())
        return out
