"""LocalKeyProvider rotation: new versions, atomic 0600 file, pruning, and a second process."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from vault.keys import KeyUnavailable, LocalKeyProvider


def test_rotate_retain_and_a_concurrent_holder(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    admin = LocalKeyProvider.open_or_create(path)
    server = LocalKeyProvider.open_or_create(path)  # another process with the file in memory
    old = admin.current_key_id()
    w_old = server.wrap(b"k" * 32, {"case_id": "a"})

    new = admin.rotate()
    assert new != old
    assert admin.current_key_id() == new
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [k["id"] for k in json.loads(path.read_text())["keys"]] == [old, new]
    w_new = admin.wrap(b"k" * 32, {"case_id": "a"})
    assert admin.key_ids_of(w_new) == new
    # The running holder opens the re-wrapped key (it re-reads the file) and adopts current.
    assert server.unwrap(w_new, {"case_id": "a"}) == b"k" * 32
    assert server.key_ids_of(server.wrap(b"x" * 32, {"case_id": "b"})) == new

    assert admin.retain({new}) == [old]
    assert [k["id"] for k in json.loads(path.read_text())["keys"]] == [new]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # Dropped from the file, but the holders still have it in memory until restart.
    assert server.unwrap(w_old, {"case_id": "a"}) == b"k" * 32
    restarted = LocalKeyProvider.open_or_create(path)
    with pytest.raises(KeyUnavailable):
        restarted.unwrap(w_old, {"case_id": "a"})
    assert restarted.unwrap(w_new, {"case_id": "a"}) == b"k" * 32
    assert admin.retain({new}) == []  # current is always kept
