"""The local blob store on a disk that is really full, or under a real file-size limit.

Nothing is simulated in the store: the failures come from the kernel.  A tiny tmpfs, mounted
in a private mount namespace (``unshare``, no privileges needed where user namespaces are
allowed), gives a real ``ENOSPC``; ``RLIMIT_FSIZE`` gives a real ``EFBIG`` everywhere.  Both run
in a child process, because a mount namespace or a resource limit must not leak into the test
process itself.  The child prints what it saw as one JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

# The child: a store with one committed blob, then writes that cannot fit.  ``full`` also fills
# the file system up first, so that even a small write fails (at commit, when it is flushed).
# ``limit`` caps the size of every file the child writes at 1 MiB, set by the child itself
# (SIGXFSZ ignored, so that the kernel answers with EFBIG instead of killing it).
CHILD = r"""
import errno, json, os, resource, signal, sys
from pathlib import Path
from vault.storage import LocalBlobStore, StorageError, StorageUnavailable

root, full = Path(sys.argv[1]), sys.argv[2] == "full"
if sys.argv[2] == "limit":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
store = LocalBlobStore(root / "blobs")
with store.writer() as w:
    w.write(b"committed before the disk filled up")
    kept = w.commit()
seen = {"kept": kept}

if full:
    with open(root / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            seen["filler_errno"] = errno.errorcode[exc.errno]

def outcome(action):
    try:
        action()
    except StorageUnavailable as exc:
        return {"error": "StorageUnavailable", "cause": errno.errorcode[exc.__cause__.errno]}
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"error": None}

big = store.writer()
seen["big_write"] = outcome(lambda: [big.write(b"\0" * 65536) for _ in range(64)])
seen["tmp_after_big_write"] = os.listdir(root / "blobs" / "tmp")
seen["commit_after_failed_write"] = outcome(big.commit)

small = store.writer()
small.write(b"x" * 1000)  # fits the write buffer: the disk is only touched at commit
seen["small_commit"] = outcome(small.commit)
seen["tmp_after_small_commit"] = os.listdir(root / "blobs" / "tmp")
seen["names"] = sorted(store.names())
print(json.dumps(seen))
"""


# A mount namespace of the child's own, as root of a user namespace of its own: the tmpfs is
# visible to the child only and disappears with it.
_UNSHARE = ["unshare", "--user", "--map-root-user", "--mount"]


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINKO_")}
    # No bytecode files: under RLIMIT_FSIZE they are writes like any other.
    env.update(PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    return env


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def _can_mount_tmpfs(where: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [*_UNSHARE, "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"', str(where)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0


def test_full_disk_is_storage_unavailable_and_leaves_no_partial_blob(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not _can_mount_tmpfs(mnt):
        pytest.skip("user namespaces with a private tmpfs are not allowed on this machine")
    script = 'mount -t tmpfs -o size=256k,mode=0700 tmpfs "$0" && exec "$1" -c "$2" "$0" full'
    result = subprocess.run(
        [*_UNSHARE, "sh", "-c", script, str(mnt), sys.executable, CHILD],
        capture_output=True,
        text=True,
        env=_child_env(),
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    seen = _report(result)
    assert seen["filler_errno"] == "ENOSPC"  # the disk really was full
    assert seen["big_write"] == {"error": "StorageUnavailable", "cause": "ENOSPC"}
    # The failed write aborted at once: its temp file is gone without the caller's help, and
    # the writer refuses to commit what it could not write.
    assert seen["tmp_after_big_write"] == []
    assert seen["commit_after_failed_write"]["error"] == "StorageError"
    assert seen["small_commit"] == {"error": "StorageUnavailable", "cause": "ENOSPC"}
    assert seen["tmp_after_small_commit"] == []
    assert seen["names"] == [seen["kept"]]


def test_file_size_limit_is_storage_unavailable_and_leaves_no_partial_blob(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), "limit"],
        capture_output=True,
        text=True,
        env=_child_env(),
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    seen = _report(result)
    assert seen["big_write"] == {"error": "StorageUnavailable", "cause": "EFBIG"}
    assert seen["tmp_after_big_write"] == []
    assert seen["commit_after_failed_write"]["error"] == "StorageError"
    # A small blob stays under the limit and is committed as usual.
    assert seen["small_commit"] == {"error": None}
    assert seen["tmp_after_small_commit"] == []
    assert len(seen["names"]) == 2
    assert seen["kept"] in seen["names"]
