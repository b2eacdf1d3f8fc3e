"""Case keys: created per case, wrapped by the master key provider, unwrapped on demand.

Everything sealed in the catalog (titles, digests, data keys) uses the case key with associated
data naming the row it belongs to, so a value copied onto another row fails to open.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from vault.crypto import UnwrapError, new_data_key, open_sealed, seal, unwrap_key, wrap_key
from vault.crypto.wrap import SealOpener
from vault.errors import Gone
from vault.keys.errors import KeyUnavailable
from vault.keys.provider import KeyProvider

__all__ = ["SHREDDED_KEY", "Keyring", "is_shredded"]

# What ``Case.wrapped_key`` holds once a case was crypto-shredded: the wrapped case key is
# gone, so nothing sealed under it (titles, digests, data keys, hence content) can be opened.
SHREDDED_KEY = b""


def is_shredded(wrapped: bytes) -> bool:
    return wrapped == SHREDDED_KEY


def _ad(label: str, *parts: str | int) -> bytes:
    # Length-prefixed parts make the encoding injective: ("ab", "c") and ("a", "bc") differ.
    out = bytearray(f"kinko-v1 {label}".encode())
    for part in parts:
        raw = str(part).encode()
        out += len(raw).to_bytes(2, "big") + raw
    return bytes(out)


class Keyring:
    def __init__(self, provider: KeyProvider, cache_size: int = 1024) -> None:
        self.provider = provider
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # -- case keys ------------------------------------------------------------------------------

    def new_case_key(self, case_id: str) -> tuple[bytes, bytes]:
        key = new_data_key()
        return key, self.provider.wrap(key, {"case_id": case_id})

    def case_key(self, case_id: str, wrapped: bytes) -> bytes:
        if is_shredded(wrapped):
            raise Gone("the case was shredded: its key is destroyed", code="case_shredded")
        # Unwrapping may cost a KMS round trip with other providers; the cache is keyed by the
        # wrapped bytes, so a re-wrapped key after rotation is simply a new entry.
        ident = hashlib.sha256(case_id.encode() + b"\x00" + wrapped).digest()
        with self._lock:
            key = self._cache.get(ident)
            if key is not None:
                self._cache.move_to_end(ident)
                return key
        key = self.provider.unwrap(wrapped, {"case_id": case_id})
        with self._lock:
            self._cache[ident] = key
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return key

    def forget(self, case_id: str, wrapped: bytes) -> None:
        """Drop one cached case key (used when a case is shredded in this process)."""
        ident = hashlib.sha256(case_id.encode() + b"\x00" + wrapped).digest()
        with self._lock:
            self._cache.pop(ident, None)

    # -- sealed fields --------------------------------------------------------------------------

    @staticmethod
    def seal_case_title(case_key: bytes, case_id: str, title: str) -> bytes:
        return seal(case_key, title.encode(), _ad("case-title", case_id))

    @staticmethod
    def open_case_title(case_key: bytes, case_id: str, sealed: bytes) -> str:
        return open_sealed(case_key, sealed, _ad("case-title", case_id)).decode()

    @staticmethod
    def seal_title(case_key: bytes, doc_id: str, title: str) -> bytes:
        return seal(case_key, title.encode(), _ad("document-title", doc_id))

    @staticmethod
    def open_title(case_key: bytes, doc_id: str, sealed: bytes) -> str:
        return open_sealed(case_key, sealed, _ad("document-title", doc_id)).decode()

    @staticmethod
    def title_opener(case_key: bytes) -> Callable[[str, bytes], str]:
        """``open_title`` for many documents of one case, with the cipher set up once."""
        opener = SealOpener(case_key)
        prefix = _ad("document-title")

        def open_one(doc_id: str, sealed: bytes) -> str:
            raw = doc_id.encode()
            return opener.open(sealed, prefix + len(raw).to_bytes(2, "big") + raw).decode()

        return open_one

    @staticmethod
    def digest_opener(case_key: bytes) -> Callable[[str, int, bytes], str]:
        """``open_digest`` for many versions of one case, with the cipher set up once."""
        opener = SealOpener(case_key)
        return lambda doc_id, version, sealed: opener.open(
            sealed, _ad("version-sha256", doc_id, version)
        ).decode()

    @staticmethod
    def seal_record(case_key: bytes, label: str, row_id: str, data: Mapping[str, Any]) -> bytes:
        """Sensitive free text of a row (a disclosure's recipient, a contact's agenda, a
        notification's text) as one sealed JSON object, bound to its table and row."""
        raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return seal(case_key, raw, _ad(label, row_id))

    @staticmethod
    def open_record(case_key: bytes, label: str, row_id: str, sealed: bytes) -> dict[str, Any]:
        value = json.loads(open_sealed(case_key, sealed, _ad(label, row_id)))
        if not isinstance(value, dict):
            raise ValueError("a sealed record must hold a JSON object")
        return value

    @staticmethod
    def seal_digest(case_key: bytes, doc_id: str, version: int, digest: str) -> bytes:
        return seal(case_key, digest.encode(), _ad("version-sha256", doc_id, version))

    @staticmethod
    def open_digest(case_key: bytes, doc_id: str, version: int, sealed: bytes) -> str:
        return open_sealed(case_key, sealed, _ad("version-sha256", doc_id, version)).decode()

    @staticmethod
    def seal_content_type(case_key: bytes, doc_id: str, version: int, media_type: str) -> bytes:
        # Sealed like the title: a media type says what kind of document it is (a scanned
        # proposal, a spreadsheet of prices), which the catalog must not tell in the clear.
        return seal(case_key, media_type.encode(), _ad("version-content-type", doc_id, version))

    @staticmethod
    def open_content_type(case_key: bytes, doc_id: str, version: int, sealed: bytes) -> str:
        return open_sealed(case_key, sealed, _ad("version-content-type", doc_id, version)).decode()

    @staticmethod
    def wrap_dek(case_key: bytes, doc_id: str, version: int, dek: bytes) -> bytes:
        return wrap_key(case_key, dek, _ad("dek", doc_id, version))

    @staticmethod
    def unwrap_dek(case_key: bytes, doc_id: str, version: int, wrapped: bytes) -> bytes:
        try:
            return unwrap_key(case_key, wrapped, _ad("dek", doc_id, version))
        except UnwrapError as exc:
            raise KeyUnavailable(str(exc)) from None
