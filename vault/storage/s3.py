"""A blob store on an S3-compatible object store (AWS S3, MinIO, Ceph RGW, moto).

Layout: every blob is one object under ``<prefix><name>``, ``name`` being the random blob name
from :func:`~vault.storage.base.new_blob_name`.  Nothing about a document (title, case,
class, size bucket) is part of the key, so listing the bucket reveals nothing.

Writes stream with bounded memory: at most one part (``part_size``, 8 MiB by default) is held
in memory per writer.  A blob that fits in one part is stored with a single ``PutObject``;
a larger one goes through a multipart upload whose parts are sent as they fill.  Either way
the final request is conditional (``If-None-Match: *``), so a commit can never overwrite an
existing object, which is the object-store counterpart of the local backend's ``link``.

A multipart upload is only visible as an object once it is completed, so an upload cut short
leaves invisible parts behind (which S3 bills for).  The writer aborts its upload on every
failure path; what a crash leaves behind is aborted by :meth:`S3BlobStore.cleanup_incomplete`
at the next start-up, and buckets should also carry an ``AbortIncompleteMultipartUpload``
lifecycle rule as a backstop.

Transient failures (throttling such as ``SlowDown``, HTTP 5xx, dropped connections) are
retried inside botocore by the retry configuration of the client built in
:meth:`S3BlobStore.connect`; whatever still fails is mapped to
:class:`~vault.storage.base.StorageError` (or a subclass) here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import boto3
import botocore.config
import certifi
import urllib3
import urllib3.exceptions
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from .base import (
    WRITER_ABORTED,
    WRITER_COMMITTED,
    WRITER_OPEN,
    BlobEntry,
    BlobExists,
    BlobNotFound,
    ReaderLifecycle,
    StorageError,
    StorageUnavailable,
    WriterLifecycle,
    is_valid_blob_name,
    new_blob_name,
)

__all__ = ["DEFAULT_PART_SIZE", "MIN_PART_SIZE", "S3BlobStore"]

log = logging.getLogger(__name__)

MIB = 1 << 20
# S3 refuses parts smaller than 5 MiB (except the last one).
MIN_PART_SIZE = 5 * MIB
DEFAULT_PART_SIZE = 8 * MIB
# S3 allows at most 10,000 parts per upload: 80 GB with the default part size.
_MAX_PARTS = 10_000
# See cleanup_incomplete: uploads younger than this may belong to a live writer.
DEFAULT_INCOMPLETE_MAX_AGE = timedelta(hours=1)
# A 128-bit random name colliding does not happen in practice; retrying only exists so that
# a collision (or a test forcing one) is handled without overwriting.
_COMMIT_ATTEMPTS = 8

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# 412 is the answer to If-None-Match when the key exists; 409 is what AWS returns when
# another conditional write to the same key is in progress.
_TAKEN_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})

# Per-part integrity checksum (botocore computes it; S3 verifies it on receipt).
_CHECKSUM = "CRC32"

_OPEN, _COMMITTED, _ABORTED = WRITER_OPEN, WRITER_COMMITTED, WRITER_ABORTED

# Reads are plain GETs of presigned URLs on a connection pool of our own: a boto3
# ``get_object`` per read cost more CPU than the rest of an audited read.  A URL is signed for
# ``_PRESIGN_SECONDS`` and reused for ``_PRESIGN_REUSE_SECONDS`` (blob names are immutable and
# the objects hold only ciphertext); a 403 (credentials rotated since) is signed again once.
_PRESIGN_SECONDS = 900
_PRESIGN_REUSE_SECONDS = 600
_PRESIGN_CACHE = 4096
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")

# Errors a streaming body can raise while being read, besides botocore's own (urllib3 is a
# dependency of botocore).
_STREAM_ERRORS: tuple[type[BaseException], ...] = (
    BotoCoreError,
    OSError,
    urllib3.exceptions.HTTPError,
)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _fail(action: str, exc: Exception) -> NoReturn:
    """Raise the storage error matching a botocore failure (without chaining it)."""
    if isinstance(exc, ClientError):
        raise StorageError(f"S3 {action} failed: {_code(exc) or _status(exc)}") from None
    if isinstance(exc, NoCredentialsError):
        raise StorageUnavailable(f"S3 {action} failed: no AWS credentials found") from None
    # Connection refused, timeouts, retries exhausted: the store is not answering.
    raise StorageUnavailable(f"S3 {action} failed: {type(exc).__name__}: {exc}") from None


def _default_client(endpoint_url: str | None) -> Any:
    config = botocore.config.Config(
        # botocore retries throttling (SlowDown, 503), 5xx, and connection errors with
        # exponential backoff and jitter.  "standard" rather than "adaptive": the adaptive
        # client-side rate limiter is still marked experimental and would make one slow
        # tenant throttle every request thread sharing this client.
        retries={"max_attempts": 8, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        # The server handles requests in a thread pool; one shared (thread-safe) client.
        max_pool_connections=32,
    )
    # A session of its own: boto3's default session is not thread-safe to create clients on.
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, config=config)


class S3BlobStore:
    """A :class:`~vault.storage.base.BlobStore` keeping each blob in its own S3 object."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
        incomplete_max_age: timedelta = DEFAULT_INCOMPLETE_MAX_AGE,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes")
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._part_size = part_size
        self._incomplete_max_age = incomplete_max_age
        self._lock = threading.Lock()
        # Multipart uploads of this instance's open writers: cleanup_incomplete spares them.
        self._active_uploads: set[str] = set()
        self._signed: dict[str, tuple[float, str]] = {}
        # The same retry policy as the botocore client for what a GET can meet: connection
        # errors, 5xx and throttling, with exponential backoff.
        self._http = urllib3.PoolManager(
            num_pools=4,
            maxsize=32,
            retries=urllib3.Retry(
                total=7,
                backoff_factor=0.1,
                status_forcelist=(429, 500, 502, 503, 504),
                allowed_methods=frozenset({"GET"}),
                raise_on_status=False,
            ),
            timeout=urllib3.Timeout(connect=10, read=60),
            cert_reqs="CERT_REQUIRED",
            # The CA bundle botocore would use for a private endpoint, else the public roots.
            ca_certs=os.environ.get("AWS_CA_BUNDLE") or certifi.where(),
        )
        # Behind a proxy (which botocore honours from the environment) reads go through the
        # SDK as everything else does, rather than around the proxy.
        self._direct_reads = not any(os.environ.get(v) for v in _PROXY_VARIABLES)

    @classmethod
    def connect(
        cls,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any = None,
        part_size: int = DEFAULT_PART_SIZE,
        incomplete_max_age: timedelta = DEFAULT_INCOMPLETE_MAX_AGE,
    ) -> S3BlobStore:
        """Build a client (region and credentials from the standard AWS chain) and check it.

        The bucket is probed with ``HeadBucket`` so that a missing bucket, refused
        credentials or an unreachable endpoint stop the server at start-up with a
        :class:`StorageUnavailable` naming the bucket and endpoint.
        """
        if client is None:
            try:
                client = _default_client(endpoint_url)
            except BotoCoreError as exc:  # e.g. no region configured, malformed endpoint
                raise StorageUnavailable(
                    f"cannot configure S3 client for bucket {bucket!r}: {exc}"
                ) from None
        where = f"bucket {bucket!r} at {client.meta.endpoint_url}"
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            status, code = _status(exc), _code(exc)
            if status == 404 or code in ("NoSuchBucket", "404", "NotFound"):
                reason = "does not exist"
            elif status == 403 or code in ("403", "Forbidden", "AccessDenied"):
                reason = "refused access (check credentials and permissions)"
            elif status == 301 or code in ("301", "PermanentRedirect"):
                reason = "is in another region (check AWS_DEFAULT_REGION)"
            else:
                reason = f"cannot be used (HTTP {status} {code})"
            raise StorageUnavailable(f"S3 {where} {reason}") from None
        except NoCredentialsError:
            raise StorageUnavailable(
                f"no AWS credentials found for S3 {where} "
                "(environment, shared credentials file, or instance role)"
            ) from None
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot reach S3 {where}: {exc}") from None
        return cls(
            client,
            bucket,
            prefix,
            part_size=part_size,
            incomplete_max_age=incomplete_max_age,
        )

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def part_size(self) -> int:
        return self._part_size

    # -- BlobStore -------------------------------------------------------------------------

    def writer(self, name: str | None = None) -> _S3BlobWriter:
        if name is not None:
            self._key(name)  # refuses a malformed name before anything is sent
        return _S3BlobWriter(self, name)

    def open(self, name: str) -> _S3BlobReader:
        key = self._key(name)
        if not self._direct_reads:
            return self._open_with_sdk(name, key)
        for attempt in (1, 2):
            url = self._presigned(key, fresh=attempt == 2)
            try:
                response = self._http.request(
                    "GET", url, preload_content=False, decode_content=False, redirect=False
                )
            except urllib3.exceptions.HTTPError as exc:
                raise StorageUnavailable(f"S3 GetObject failed: {type(exc).__name__}") from None
            if response.status == 200:
                length = response.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    response.close()
                    raise StorageError("S3 GetObject answered without a Content-Length")
                return _S3BlobReader(response, int(length), release=response.release_conn)
            status = response.status
            response.drain_conn()
            response.release_conn()
            if status == 404:
                raise BlobNotFound(f"no blob named {name}")
            if status in (400, 403) and attempt == 1:
                # Signed with credentials that have since been rotated or whose session token
                # expired (403, or 400 ExpiredToken): sign again with the current ones.
                continue
            if status in (429, 500, 502, 503, 504):
                raise StorageUnavailable(f"S3 GetObject failed: HTTP {status}")
            raise StorageError(f"S3 GetObject failed: HTTP {status}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _open_with_sdk(self, name: str, key: str) -> _S3BlobReader:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404 or _code(exc) in _NOT_FOUND_CODES:
                raise BlobNotFound(f"no blob named {name}") from None
            _fail("GetObject", exc)
        except BotoCoreError as exc:
            _fail("GetObject", exc)
        return _S3BlobReader(response["Body"], int(response["ContentLength"]))

    def _presigned(self, key: str, *, fresh: bool) -> str:
        now = time.monotonic()
        with self._lock:
            hit = self._signed.get(key)
            if hit is not None and not fresh and now - hit[0] < _PRESIGN_REUSE_SECONDS:
                return hit[1]
        try:
            url = str(
                self._client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self._bucket, "Key": key},
                    ExpiresIn=_PRESIGN_SECONDS,
                )
            )
        except (ClientError, BotoCoreError) as exc:
            _fail("GetObject", exc)
        with self._lock:
            if len(self._signed) >= _PRESIGN_CACHE:
                self._signed.clear()
            self._signed[key] = (now, url)
        return url

    def delete(self, name: str) -> None:
        if not is_valid_blob_name(name):
            # A malformed name cannot refer to a stored blob, so it is simply "missing".
            return
        try:
            # DeleteObject succeeds for missing keys.  With versioning enabled it only adds a
            # delete marker; shredding then relies on the key, not on this call.
            self._client.delete_object(Bucket=self._bucket, Key=self._key(name))
        except (ClientError, BotoCoreError) as exc:
            _fail("DeleteObject", exc)

    def exists(self, name: str) -> bool:
        if not is_valid_blob_name(name):
            return False
        try:
            self._client.head_object(Bucket=self._bucket, Key=self._key(name))
        except ClientError as exc:
            if _status(exc) == 404 or _code(exc) in _NOT_FOUND_CODES:
                return False
            # 403 lands here: without s3:ListBucket S3 answers 403 for missing keys, and a
            # permission problem must not be mistaken for "the blob is gone".
            _fail("HeadObject", exc)
        except BotoCoreError as exc:
            _fail("HeadObject", exc)
        return True

    def names(self) -> Iterator[str]:
        for entry in self.entries():
            yield entry.name

    def entries(self) -> Iterator[BlobEntry]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self._bucket, Prefix=self._prefix))
        cut = len(self._prefix)
        while True:
            try:
                page = next(pages, None)
            except (ClientError, BotoCoreError) as exc:
                _fail("ListObjectsV2", exc)
            if page is None:
                return
            for entry in page.get("Contents", []):
                key = str(entry["Key"])
                name = key[cut:]
                # Only keys exactly where _key would put a blob count; other objects that
                # share the bucket (or a longer prefix) are not blobs.
                if key.startswith(self._prefix) and is_valid_blob_name(name):
                    # LastModified is when the object became visible (for a multipart
                    # upload: when the upload started, which is earlier, never later).
                    modified = entry["LastModified"]
                    if modified.tzinfo is None:
                        modified = modified.replace(tzinfo=UTC)
                    yield BlobEntry(name=name, size=int(entry["Size"]), modified=modified)

    def cleanup_incomplete(self) -> int:
        """Abort multipart uploads under the prefix that are older than the age threshold.

        Unlike a local ``tmp/`` directory, a bucket can be shared by several server
        processes (replicas, or an old process still draining during a restart), and S3 does
        not say which process started an upload.  Aborting an upload kills the writer that
        owns it, so only uploads older than ``incomplete_max_age`` (1 hour by default, far
        longer than any single upload should take) are treated as crash leftovers; this
        instance's own open writers are always spared.
        """
        cutoff = datetime.now(UTC) - self._incomplete_max_age
        with self._lock:
            active = set(self._active_uploads)
        stale: list[tuple[str, str]] = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
                for upload in page.get("Uploads", []):
                    key, upload_id = str(upload["Key"]), str(upload["UploadId"])
                    initiated = upload.get("Initiated")
                    if not (
                        key.startswith(self._prefix)
                        and is_valid_blob_name(key[len(self._prefix) :])
                    ):
                        continue
                    if upload_id in active:
                        continue
                    if not isinstance(initiated, datetime) or initiated > cutoff:
                        continue
                    stale.append((key, upload_id))
        except (ClientError, BotoCoreError) as exc:
            _fail("ListMultipartUploads", exc)
        removed = 0
        for key, upload_id in stale:
            try:
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=upload_id
                )
            except ClientError as exc:
                if _code(exc) == "NoSuchUpload":  # completed or aborted meanwhile
                    continue
                _fail("AbortMultipartUpload", exc)
            except BotoCoreError as exc:
                _fail("AbortMultipartUpload", exc)
            removed += 1
        return removed

    # -- helpers used by the writer --------------------------------------------------------

    def _key(self, name: str) -> str:
        # Every key built from a caller-supplied name passes through this check, so a
        # malformed name can never address an object outside the store's own blobs.
        if not is_valid_blob_name(name):
            raise BlobNotFound("malformed blob name")
        return self._prefix + name

    def _put_new(self, body: bytes | bytearray, fixed: str | None = None) -> str:
        """Store a small blob under a fresh name with a conditional PutObject."""
        for _ in range(1 if fixed else _COMMIT_ATTEMPTS):
            name = fixed or new_blob_name()
            try:
                self._client.put_object(
                    Bucket=self._bucket, Key=self._key(name), Body=body, IfNoneMatch="*"
                )
            except ClientError as exc:
                if _code(exc) in _TAKEN_CODES or _status(exc) in (409, 412):
                    if fixed:
                        raise BlobExists(f"blob {fixed} exists") from None
                    # Note: if an earlier attempt of the *same* request succeeded but its
                    # answer was lost, botocore's retry sees 412 too; the blob then stays
                    # behind unreferenced (garbage, never a lost or overwritten blob).
                    continue
                _fail("PutObject", exc)
            except BotoCoreError as exc:
                _fail("PutObject", exc)
            return name
        raise StorageError("could not allocate an unused blob name")

    def _start_upload(self, fixed: str | None = None) -> tuple[str, str]:
        """Start a multipart upload under a fresh name; returns (name, upload id)."""
        name = fixed or new_blob_name()
        try:
            # The checksum algorithm is declared up front (as s3transfer does), so that the
            # CRC32 botocore attaches to every part is checked by S3 and tied into the
            # completed object instead of being an undeclared extra.
            response = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key(name), ChecksumAlgorithm=_CHECKSUM
            )
        except (ClientError, BotoCoreError) as exc:
            _fail("CreateMultipartUpload", exc)
        upload_id = str(response["UploadId"])
        with self._lock:
            self._active_uploads.add(upload_id)
        return name, upload_id

    def _upload_part(
        self, name: str, upload_id: str, number: int, body: bytes | bytearray
    ) -> dict[str, Any]:
        try:
            response = self._client.upload_part(
                Bucket=self._bucket,
                Key=self._key(name),
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm=_CHECKSUM,
            )
        except (ClientError, BotoCoreError) as exc:
            _fail("UploadPart", exc)
        part: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
        # Completion must repeat each part's checksum when the upload declared an algorithm.
        if f"Checksum{_CHECKSUM}" in response:
            part[f"Checksum{_CHECKSUM}"] = response[f"Checksum{_CHECKSUM}"]
        return part

    def _complete(self, name: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        try:
            # Conditional like PutObject: never replace an object that appeared under this
            # key while the parts were being uploaded (supported by AWS S3 since 2024-08;
            # botocore in this project's venv has the parameter).
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key(name),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if _code(exc) in _TAKEN_CODES or _status(exc) in (409, 412):
                # The name was fixed when the upload started, so a taken name cannot be
                # retried under another one here; nothing was replaced.
                raise BlobExists(f"blob {name} exists (refusing to overwrite)") from None
            _fail("CompleteMultipartUpload", exc)
        except BotoCoreError as exc:
            _fail("CompleteMultipartUpload", exc)

    def _abort_upload(self, name: str, upload_id: str) -> None:
        """Best effort: a failure is logged, and cleanup_incomplete removes the leftover."""
        try:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key(name), UploadId=upload_id
            )
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                log.warning("could not abort multipart upload of blob %s: %s", name, _code(exc))
        except BotoCoreError as exc:
            log.warning("could not abort multipart upload of blob %s: %s", name, exc)
        finally:
            self._release_upload(upload_id)

    def _release_upload(self, upload_id: str) -> None:
        with self._lock:
            self._active_uploads.discard(upload_id)


class _S3BlobWriter(WriterLifecycle):
    """Buffers at most one part; sends parts as they fill, and commits conditionally."""

    def __init__(self, store: S3BlobStore, name: str | None = None) -> None:
        self._store = store
        self._fixed = name
        self._part_size = store.part_size
        self._state = _OPEN
        self._size = 0
        self._buffer = bytearray()
        self._name: str | None = None
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    @property
    def size(self) -> int:
        return self._size

    @property
    def buffered(self) -> int:
        """Bytes held in memory right now (never more than one part)."""
        return len(self._buffer)

    def write(self, data: bytes) -> None:
        self._require_open("write")
        view = memoryview(data).cast("B")
        try:
            while view:
                # A full buffer is only sent once more data arrives, so the last part is
                # never empty and a blob of exactly one part is a single PutObject.
                if len(self._buffer) >= self._part_size:
                    self._flush_part()
                room = self._part_size - len(self._buffer)
                self._buffer += view[:room]
                self._size += min(room, len(view))
                view = view[room:]
        except BaseException:
            self.abort()
            raise

    def commit(self) -> str:
        self._require_open("commit")
        try:
            if self._upload_id is None:
                name = self._store._put_new(self._buffer, self._fixed)
            else:
                self._flush_part()
                assert self._name is not None
                self._store._complete(self._name, self._upload_id, self._parts)
                self._store._release_upload(self._upload_id)
                name = self._name
        except BaseException:
            self.abort()
            raise
        self._state = _COMMITTED
        self._buffer = bytearray()
        return name

    def abort(self) -> None:
        if self._state != _OPEN:
            return
        self._state = _ABORTED
        self._buffer = bytearray()
        if self._upload_id is not None and self._name is not None:
            self._store._abort_upload(self._name, self._upload_id)

    def _flush_part(self) -> None:
        if self._upload_id is None:
            self._name, self._upload_id = self._store._start_upload(self._fixed)
        number = len(self._parts) + 1
        if number > _MAX_PARTS:
            raise StorageError("blob too large for a multipart upload with this part size")
        assert self._name is not None
        # The buffer object itself is handed over (no copy) and replaced by a fresh one.
        body, self._buffer = self._buffer, bytearray()
        self._parts.append(self._store._upload_part(self._name, self._upload_id, number, body))


class _S3BlobReader(ReaderLifecycle):
    """Streams an object body; only the HTTP client's small buffers are held in memory."""

    def __init__(self, body: Any, size: int, release: Any = None) -> None:
        self._body = body
        self._size = size
        self._left = size
        self._closed = False
        # Hands a fully read connection back to the pool; one abandoned mid-way is closed.
        self._release_conn = release

    @property
    def size(self) -> int:
        return self._size

    def _read(self, n: int) -> bytes:
        try:
            data = bytes(self._body.read(None if n < 0 else n))
        except _STREAM_ERRORS as exc:
            raise StorageError(f"reading blob failed: {type(exc).__name__}") from None
        self._left -= len(data)
        if not data and self._left > 0:
            raise StorageError("reading blob failed: the object ended early")
        return data

    def _release(self) -> None:
        # Closing returns (or drops) the HTTP connection; a failure to do so changes nothing
        # for the caller, whose reading is over either way.
        with contextlib.suppress(Exception):
            if self._release_conn is not None and self._left == 0:
                self._release_conn()
            else:
                self._body.close()
