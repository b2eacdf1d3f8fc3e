"""One pass of the workstation sync client: mirror the manifest down, queue and send edits up.

A pass (:meth:`SyncEngine.run_once`) is:

1. fetch the manifest (what the user may read, and which classes they may write per case);
2. scan ``DIR/<case>/<class>/`` of the manifest's cases: new files and changed synced files are
   queued in the durable upload queue (``state.db``); a deleted synced file is marked
   ``deleted_locally`` (deletion never propagates to the vault); changes in classes the user
   may not write are reported once and never sent;
3. send the queue, each entry with its stored ``Idempotency-Key`` (and ``If-Match`` on the
   version it was based on), so a retry after a crash cannot create a second version; a 412
   turns the local file into a conflict copy that is uploaded as a new document;
4. if anything was sent, fetch the manifest again; then bring every readable document down
   (temp file in the same folder, size and SHA-256 checked, fsync, rename) and remove, or
   quarantine when they hold unsent edits, the local copies of documents no longer readable.

Every state change is one SQLite transaction, written after the file system change it
records, and every step is re-derived from the disk and the manifest on the next pass, so a
client killed at any moment converges when restarted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mimetypes
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from clients.api import KinkoClient, KinkoHTTPError
from clients.sync.naming import (
    CLASSES,
    STATE_DIR,
    TEMP_PREFIX,
    DocRef,
    UnsafePathError,
    assign_names,
    case_dir,
    conflict_name,
    decode_component,
    is_ignored,
    safe_join,
    split_ext,
)
from clients.sync.state import PURPOSE_META, FileRecord, FileState, State, Upload, db_path

__all__ = ["PassReport", "SyncEngine", "SyncLockedError"]

QUARANTINE_DIR = "quarantine"
BLOCKED_PREFIX = "blocked:"
QUARANTINE_PREFIX = "quarantine:"
MAX_BACKOFF = timedelta(seconds=15)  # the issue caps retries of a queued upload at 15 s


class SyncLockedError(RuntimeError):
    """Another sync client is running on the same directory."""


@dataclass
class PassReport:
    """What one pass did (paths are relative to DIR, '/'-separated)."""

    downloaded: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pending_uploads: int = 0

    @property
    def in_step(self) -> bool:
        """Nothing left to send and no error in this pass."""
        return not self.errors and self.pending_uploads == 0


@dataclass(frozen=True)
class _Doc:
    id: str
    case_id: str
    cls: str
    title: str
    version: int
    size: int
    sha256: str
    order: int


@dataclass(frozen=True)
class _Case:
    id: str
    number: str
    writable: frozenset[str]


class _Manifest:
    def __init__(self, body: dict[str, Any]) -> None:
        self.cases: dict[str, _Case] = {}
        for c in body["cases"]:
            self.cases[c["id"]] = _Case(c["id"], c["number"], frozenset(c["writable_classes"]))
        self.docs: dict[str, _Doc] = {}
        for i, d in enumerate(body["documents"]):
            self.docs[d["id"]] = _Doc(
                d["id"], d["case_id"], d["class"], d["title"], d["version"], d["size"],
                d["sha256"], i,
            )  # fmt: skip
        names = assign_names(
            DocRef(d.id, d.title, d.order, d.case_id, d.cls) for d in self.docs.values()
        )
        self.paths: dict[str, str] = {}
        for d in self.docs.values():
            case = self.cases.get(d.case_id)
            if case is None or d.cls not in CLASSES:
                continue
            self.paths[d.id] = f"{case_dir(case.number)}/{d.cls}/{names[d.id]}"

    def writable(self, case_id: str, cls: str) -> bool:
        case = self.cases.get(case_id)
        return case is not None and cls in case.writable


def _hash_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SyncEngine:
    """Keeps ``root`` in step with what the client's user may read and write."""

    def __init__(
        self, root: Path, client: KinkoClient, *, purpose: str, device: str | None = None
    ) -> None:
        self.root = Path(root).resolve()
        self.client = client
        self.purpose = purpose
        self._manifest_cache: tuple[str, dict[str, Any]] | None = None
        # Called with (path, bytes moved, file finished) while files move; the CLI draws its
        # progress bar from it.
        self.on_transfer: Callable[[str, int, bool], None] | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = State.open(self.root)
        self.device = device or self.state.device_id
        self._fresh: set[str] = set()  # documents created or written during this pass
        client.http.headers["X-Kinko-Device"] = self.device

    def close(self) -> None:
        self.state.close()

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------

    def _abs(self, rel: str) -> Path:
        return safe_join(self.root, *rel.split("/"))

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        path = self.root / STATE_DIR / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SyncLockedError(f"another sync client is running on {self.root}") from None
            yield
        finally:
            os.close(fd)

    def _unchanged(self, rec: FileRecord, path: Path) -> tuple[bool, str, int]:
        """Whether the file still holds what ``rec`` recorded; also its (sha256, size)."""
        st = path.stat()
        if rec.size == st.st_size and rec.mtime_ns == st.st_mtime_ns and rec.sha256:
            return True, rec.sha256, st.st_size
        sha, size = _hash_file(path)
        return sha == rec.sha256, sha, size

    def _record(self, rel: str, base: FileRecord | _Doc, **kw: Any) -> FileRecord:
        path = self._abs(rel)
        sha, size = _hash_file(path)
        values: dict[str, Any] = {
            "path": rel,
            "doc_id": base.doc_id if isinstance(base, FileRecord) else base.id,
            "case_id": base.case_id,
            "cls": base.cls,
            "version": base.version,
            "sha256": sha,
            "size": size,
            "mtime_ns": path.stat().st_mtime_ns,
            "state": "synced",
        }
        values.update(kw)
        return FileRecord(**values)

    def _block(self, rel: str, sha: str, why: str, report: PassReport) -> None:
        """Report a change that cannot be sent, once per content."""
        if self.state.get_meta(BLOCKED_PREFIX + rel) != sha:
            self.state.set_meta(BLOCKED_PREFIX + rel, sha)
            report.blocked.append(rel)
            self.state.last_error = f"{rel}: {why}"

    def _conflict_copy(self, rel: str) -> str:
        """Move the local file at ``rel`` aside to its conflict name; returns the new path."""
        folder, name = rel.rsplit("/", 1)
        now = datetime.now().astimezone()
        new_rel = f"{folder}/{conflict_name(name, self.device, now)}"
        stem, ext = split_ext(conflict_name(name, self.device, now))
        counter = 2
        while self._abs(new_rel).exists() or self.state.get_file(new_rel) is not None:
            new_rel = f"{folder}/{stem}-{counter}{ext}"
            counter += 1
        os.replace(self._abs(rel), self._abs(new_rel))
        return new_rel

    def _quarantine(self, rel: str, why: str, report: PassReport) -> None:
        qdir = self.root / STATE_DIR / QUARANTINE_DIR
        qdir.mkdir(mode=0o700, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        target = qdir / f"{stamp} {rel.replace('/', ' ')}"
        os.replace(self._abs(rel), target)
        qrel = f"{STATE_DIR}/{QUARANTINE_DIR}/{target.name}"
        self.state.set_meta(QUARANTINE_PREFIX + qrel, f"{rel}: {why}")
        for up in self.state.list_uploads():
            if up.path == rel:
                self.state.cancel_upload(up.id)
        self.state.delete_file(rel)
        report.quarantined.append(qrel)
        self.state.last_error = f"{rel}: {why}; moved to {qrel}"

    # -- the pass -----------------------------------------------------------------------------

    def run_once(self, *, restore: bool = False) -> PassReport:
        """One full pass; errors are reported (and kept as ``last_error``), not raised."""
        report = PassReport()
        self._fresh.clear()
        with self._lock():
            try:
                self._pass(report, restore)
            except (httpx.TransportError, KinkoHTTPError, OSError, UnsafePathError) as exc:
                report.errors.append(f"{type(exc).__name__}: {exc}")
            if report.errors:
                self.state.last_error = report.errors[-1]
            report.pending_uploads = len(self.state.list_uploads())
        return report

    def _fetch(self) -> _Manifest:
        # Polls are conditional: while nothing changed the server answers 304 without a body
        # (and without an audit event), and the previous answer is used again.
        cached = self._manifest_cache
        body, etag = self.client.manifest(cached[0] if cached else None)
        if body is None:
            assert cached is not None
            body = cached[1]
        else:
            self._manifest_cache = (etag, body) if etag else None
        return _Manifest(body)

    def _pass(self, report: PassReport, restore: bool) -> None:
        manifest = self._fetch()
        self._scan(manifest, report)
        if self._send_queue(manifest, report):
            manifest = self._fetch()
        self._down(manifest, report, restore)

    # -- up -----------------------------------------------------------------------------------

    def _scan(self, m: _Manifest, report: PassReport) -> None:
        assigned = {rel: doc_id for doc_id, rel in m.paths.items()}
        queued = {u.path for u in self.state.list_uploads()}
        for case in m.cases.values():
            for cls in sorted(CLASSES):
                folder = self.root / case_dir(case.number) / cls
                if not folder.is_dir() or folder.is_symlink():
                    continue
                for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                    if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                        os.unlink(entry.path)  # left behind by an interrupted download
                        continue
                    if is_ignored(entry.name) or not entry.is_file(follow_symlinks=False):
                        continue
                    rel = f"{case_dir(case.number)}/{cls}/{entry.name}"
                    self._scan_file(m, case, cls, rel, assigned.get(rel), rel in queued, report)
        # Synced files that are gone were deleted by the user: never propagated.
        for rec in self.state.list_files():
            if rec.state in ("synced", "conflict") and not self._abs(rec.path).exists():
                if rec.doc_id is None:
                    self.state.delete_file(rec.path)
                else:
                    self.state.set_file_state(rec.path, "deleted_locally")

    def _scan_file(
        self,
        m: _Manifest,
        case: _Case,
        cls: str,
        rel: str,
        assigned_doc: str | None,
        queued: bool,
        report: PassReport,
    ) -> None:
        rec = self.state.get_file(rel)
        path = self._abs(rel)
        if rec is None or rec.state == "deleted_locally":
            if rec is None and assigned_doc is not None:
                return  # where a server document goes: settled by the down pass
            sha, size = _hash_file(path)
            if rec is not None and rec.sha256 == sha:
                # The user put back the file they had deleted: synced again as it was.
                self.state.put_file(self._record(rel, rec))
                return
            if cls not in case.writable:
                self._block(rel, sha, "new file in a class you may not write", report)
                return
            doc_id = None if rec is None else rec.doc_id
            base = None if rec is None else rec.version
            st = path.stat()
            self.state.put_file(
                FileRecord(rel, doc_id, case.id, cls, base, None, None, st.st_mtime_ns,
                           "pending_upload")
            )  # fmt: skip
            self.state.enqueue_upload(
                path=rel, doc_id=doc_id, case_id=case.id, cls=cls, base_version=base,
                sha256=sha, size=size,
            )  # fmt: skip
            return
        if rec.state == "pending_upload":
            if not queued:  # crashed between recording the file and queueing it
                sha, size = _hash_file(path)
                self.state.enqueue_upload(
                    path=rel, doc_id=rec.doc_id, case_id=rec.case_id, cls=rec.cls,
                    base_version=rec.version, sha256=sha, size=size,
                )  # fmt: skip
            return
        if rec.state not in ("synced", "conflict") or rec.doc_id is None:
            return
        unchanged, sha, size = self._unchanged(rec, path)
        if unchanged:
            if rec.mtime_ns != path.stat().st_mtime_ns:
                self.state.put_file(self._record(rel, rec, state=rec.state))
            return
        if not m.writable(rec.case_id, rec.cls):
            if rec.doc_id in m.docs:  # a lost read is handled (quarantined) by the down pass
                self._block(rel, sha, "changed, but you may not write this class", report)
            return
        self.state.enqueue_upload(
            path=rel, doc_id=rec.doc_id, case_id=rec.case_id, cls=rec.cls,
            base_version=rec.version, sha256=sha, size=size,
        )  # fmt: skip

    def _send_queue(self, m: _Manifest, report: PassReport) -> bool:
        """Send every due upload; True if the server may have changed."""
        sent = False
        for up in self.state.list_uploads(due_at=datetime.now(UTC)):
            if self.state.get_upload(up.id) is None:
                continue  # superseded by an earlier entry of this pass
            try:
                sent |= self._send(m, up, report)
            except httpx.TransportError as exc:
                self._retry_later(up, f"server unreachable: {exc}", report)
                break
            except KinkoHTTPError as exc:
                if exc.status == 412:
                    self._upload_conflict(m, up, report)
                    sent = True
                elif exc.status in (403, 404):
                    self._lost_write(up, report)
                else:
                    self._retry_later(up, str(exc), report)
        return sent

    def _retry_later(self, up: Upload, error: str, report: PassReport) -> None:
        delay = min(MAX_BACKOFF, timedelta(seconds=2 ** min(up.attempts, 10)))
        self.state.record_upload_failure(up.id, error, datetime.now(UTC) + delay)
        report.errors.append(f"{up.path}: {error}")

    def _send(self, m: _Manifest, up: Upload, report: PassReport) -> bool:
        path = self._abs(up.path)
        rec = self.state.get_file(up.path)
        if not path.is_file():
            self.state.cancel_upload(up.id)
            if rec is not None and rec.doc_id is not None:
                self.state.set_file_state(up.path, "deleted_locally")
            elif rec is not None:
                self.state.delete_file(up.path)
            return False
        if not m.writable(up.case_id, up.cls):
            self._lost_write(up, report)
            return False
        # The upload is sent from a snapshot copied (and hashed) in chunks, so an editor
        # saving meanwhile cannot change the bytes mid-request and memory stays flat.
        st = path.stat()
        snapshot = self.root / ".kinko" / f".kinko-tmp-outbox-{up.id}"
        sha, size = _snapshot(path, snapshot)
        if sha != up.sha256 and up.attempts == 0:
            # Edited again before this entry was ever sent: queue the newest content instead.
            self.state.cancel_upload(up.id)
            up = self.state.enqueue_upload(
                path=up.path, doc_id=up.doc_id, case_id=up.case_id, cls=up.cls,
                base_version=up.base_version, sha256=sha, size=size,
            )  # fmt: skip
        # Counted before sending: an entry that may have reached the server keeps its key.
        self.state.record_upload_failure(up.id, "in flight", datetime.now(UTC))
        if self.on_transfer is not None:
            self.on_transfer(up.path, size, True)
        # The server keeps the media type with the version and sends it back on every read;
        # it is told from the file name, as the desktop that opens the download will.
        media = mimetypes.guess_type(up.path.rsplit("/", 1)[1])[0] or "application/octet-stream"
        try:
            if up.doc_id is None:
                title = decode_component(up.path.rsplit("/", 1)[1], strict=False)
                answer = self.client.create_document(
                    up.case_id, up.cls, title, _chunks(snapshot),
                    idempotency_key=up.idempotency_key, content_type=media,
                )  # fmt: skip
                doc_id, version = str(answer["id"]), int(answer["version"])
            else:
                answer = self.client.put_content(
                    up.doc_id, _chunks(snapshot), if_match=up.base_version,
                    idempotency_key=up.idempotency_key, content_type=media,
                )  # fmt: skip
                doc_id, version = up.doc_id, int(answer["version"])
        finally:
            snapshot.unlink(missing_ok=True)
        keep: FileState = "conflict" if rec is not None and rec.state == "conflict" else "synced"
        synced = FileRecord(
            up.path, doc_id, up.case_id, up.cls, version, sha, size, st.st_mtime_ns, keep
        )
        self.state.complete_upload(up.id, synced)
        self._fresh.add(doc_id)
        for other in self.state.list_uploads():
            if other.path == up.path:  # older entries for the same file are superseded
                self.state.cancel_upload(other.id)
        self.state.set_meta(BLOCKED_PREFIX + up.path, None)
        report.uploaded.append(up.path)
        return True

    def _lost_write(self, up: Upload, report: PassReport) -> None:
        self.state.cancel_upload(up.id)
        rec = self.state.get_file(up.path)
        if rec is not None:
            if rec.doc_id is None:
                self.state.delete_file(up.path)
            else:
                self.state.set_file_state(up.path, "synced")
        self._block(up.path, up.sha256, "you may no longer write this class", report)

    def _upload_conflict(self, m: _Manifest, up: Upload, report: PassReport) -> None:
        """Both sides changed: keep the local edit as a conflict copy and a new document."""
        self.state.cancel_upload(up.id)
        if not self._abs(up.path).exists():
            return
        copy = self._conflict_copy(up.path)
        self.state.delete_file(up.path)  # the down pass fetches the server's version
        self._track_conflict(m, copy, up.case_id, up.cls, report)

    def _track_conflict(
        self, m: _Manifest, copy: str, case_id: str, cls: str, report: PassReport
    ) -> None:
        path = self._abs(copy)
        sha, size = _hash_file(path)
        self.state.put_file(
            FileRecord(copy, None, case_id, cls, None, sha, size, path.stat().st_mtime_ns,
                       "conflict")
        )  # fmt: skip
        report.conflicts.append(copy)
        if m.writable(case_id, cls):
            up = self.state.enqueue_upload(
                path=copy, doc_id=None, case_id=case_id, cls=cls, base_version=None,
                sha256=sha, size=size,
            )  # fmt: skip
            with contextlib.suppress(KinkoHTTPError):
                self._send(m, up, report)
        else:
            self._block(copy, sha, "conflict copy in a class you may not write", report)

    # -- down ---------------------------------------------------------------------------------

    def _download(self, doc: _Doc, rel: str) -> FileRecord:
        dest = self._abs(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as f:
                for chunk in self.client.iter_read(doc.id, self.purpose):
                    f.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
                    if self.on_transfer is not None:
                        self.on_transfer(rel, len(chunk), False)
                f.flush()
                os.fsync(f.fileno())
            if size != doc.size or h.hexdigest() != doc.sha256:
                raise OSError(f"download of {rel} does not match the manifest (size/sha256)")
            os.replace(tmp, dest)
            _fsync_dir(dest.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self.on_transfer is not None:
            self.on_transfer(rel, 0, True)
        return FileRecord(
            rel, doc.id, doc.case_id, doc.cls, doc.version, doc.sha256, size,
            dest.stat().st_mtime_ns, "synced",
        )  # fmt: skip

    def _down(self, m: _Manifest, report: PassReport, restore: bool) -> None:
        for doc_id, rel in m.paths.items():
            try:
                self._down_doc(m, m.docs[doc_id], rel, report, restore)
            except (KinkoHTTPError, OSError, UnsafePathError) as exc:
                report.errors.append(f"{rel}: {exc}")
        for rec in self.state.list_files():
            if rec.doc_id is not None and rec.doc_id not in m.docs.keys() | self._fresh:
                self._lost_read(m, rec, report)

    def _down_doc(
        self, m: _Manifest, doc: _Doc, rel: str, report: PassReport, restore: bool
    ) -> None:
        recs = self.state.files_for_doc(doc.id)
        rec = recs[0] if recs else None
        if rec is not None and rec.path != rel:
            # The folder's names changed (a title, an older namesake gone): follow the server.
            if self.state.get_file(rel) is None and not self._abs(rel).exists():
                if self._abs(rec.path).exists():
                    os.replace(self._abs(rec.path), self._abs(rel))
                self.state.rename_file(rec.path, rel)
                rec = self.state.get_file(rel)
            else:
                rel = rec.path
        assert rec is None or rec.path == rel
        path = self._abs(rel)
        if rec is None:
            if self.state.get_file(rel) is not None:
                return  # another entry (e.g. a new file being uploaded) holds the name
            if path.exists():
                sha, _size = _hash_file(path)
                if sha == doc.sha256:
                    self.state.put_file(self._record(rel, doc))
                    return
                copy = self._conflict_copy(rel)
                self._track_conflict(m, copy, doc.case_id, doc.cls, report)
            self.state.put_file(self._download(doc, rel))
            report.downloaded.append(rel)
            return
        server_moved = doc.version != rec.version or doc.sha256 != rec.sha256
        if rec.state == "deleted_locally":
            if restore or doc.version != rec.version:
                if path.exists():
                    return  # the user put a file there: the scan handles it next pass
                self.state.put_file(self._download(doc, rel))
                report.downloaded.append(rel)
            return
        if rec.state not in ("synced", "conflict") or not server_moved:
            return
        if not path.exists():
            self.state.put_file(self._download(doc, rel))
            report.downloaded.append(rel)
            return
        unchanged, _sha, _size = self._unchanged(rec, path)
        if not unchanged:
            copy = self._conflict_copy(rel)
            self.state.delete_file(rel)
            self._track_conflict(m, copy, doc.case_id, doc.cls, report)
        self.state.put_file(self._download(doc, rel))
        report.downloaded.append(rel)

    def _lost_read(self, m: _Manifest, rec: FileRecord, report: PassReport) -> None:
        path = self._abs(rec.path)
        if rec.state == "deleted_locally" or not path.exists():
            self.state.delete_file(rec.path)
            return
        if rec.state == "quarantined":
            return
        unchanged, _sha, _size = self._unchanged(rec, path)
        if unchanged and rec.state != "pending_upload":
            path.unlink()
            self.state.delete_file(rec.path)
            report.removed.append(rec.path)
            return
        self._quarantine(rec.path, "read access lost with local edits not uploaded", report)


def status_lines(root: Path) -> list[str]:
    """What ``kinko sync status DIR`` prints: the purpose, pending uploads, conflicts,
    quarantine, the last error."""
    if not db_path(Path(root)).is_file():
        return [f"{root} is not a sync folder (no {STATE_DIR}/state.db)"]
    with State.open(Path(root)) as state:
        purpose = state.get_meta(PURPOSE_META)
        lines = [f"purpose: {purpose or '- (not set: give --purpose on the next run)'}"]
        uploads = state.list_uploads()
        lines.append(f"pending uploads: {len(uploads)}")
        for up in uploads:
            kind = "new document" if up.doc_id is None else f"new version of v{up.base_version}"
            err = f" (last error: {up.last_error})" if up.last_error else ""
            lines.append(f"  {up.path}  [{kind}, attempts {up.attempts}]{err}")
        conflicts = state.list_files("conflict")
        lines.append(f"conflicts: {len(conflicts)}")
        lines += [f"  {rec.path}" for rec in conflicts]
        quarantined = state.meta_items(QUARANTINE_PREFIX)
        lines.append(f"quarantined: {len(quarantined)}")
        lines += [f"  {q}  ({why})" for q, why in quarantined.items()]
        blocked = state.meta_items(BLOCKED_PREFIX)
        lines.append(f"not uploaded (no write access): {len(blocked)}")
        lines += [f"  {b}" for b in blocked]
        lines.append(f"last error: {state.last_error or '-'}")
        return lines


_CHUNK = 1 << 20


def _snapshot(src: Path, dst: Path) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` in chunks; return the SHA-256 and size of what was copied."""
    sha = hashlib.sha256()
    size = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
            fout.write(chunk)
    return sha.hexdigest(), size


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk
