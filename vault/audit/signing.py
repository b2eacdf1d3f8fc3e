"""The checkpoint signing key: its own file (mode 0600), never in the database."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from vault.audit.note import NoteSigner

KEY_FILE = "audit-signing.key"


class SigningKeyError(Exception):
    pass


def load_or_create_signer(data_dir: Path) -> NoteSigner:
    """Open the instance's signing key, creating it (origin ``kinko/<instance id>``) once."""
    path = data_dir / KEY_FILE
    if not path.exists():
        signer = NoteSigner.generate(f"kinko/{secrets.token_hex(8)}")
        tmp = data_dir / f".{KEY_FILE}.{secrets.token_hex(4)}"
        # Created 0600 from the start and published with link(), which fails rather than
        # replacing a key another process created at the same moment.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (signer.private_key() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        dir_fd = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningKeyError(
            f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
        )
    return NoteSigner.from_private_key(path.read_text().strip())
