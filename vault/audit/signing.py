"""The checkpoint signing key: its own file (mode 0600), never in the database."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

from vault.audit.note import NoteSigner
from vault.fsio import create_private


class SigningKeyError(Exception):
    pass


def load_or_create_signer(path: Path) -> NoteSigner:
    """Open the vault's signing key file, creating it (origin ``kinko/<instance id>``) once."""
    if not path.exists():
        signer = NoteSigner.generate(f"kinko/{secrets.token_hex(8)}")
        # create_private never replaces a key another process published a moment earlier
        # (False then): whichever key won is the one read back below, so there are never two.
        create_private(path, (signer.private_key() + "\n").encode())
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningKeyError(
            f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
        )
    return NoteSigner.from_private_key(path.read_text().strip())
