"""AWS KMS master key provider: case keys are wrapped by a KMS key and never leave as plaintext.

The byte format (``KNKM`` v1) is specified in ``docs/format.md`` §6.2.  Each wrap is bound to
its context through KMS's ``EncryptionContext`` (the caller's mapping, e.g. the case id, plus
a fixed ``"kinko": "case-key/v1"`` entry), so a wrapped key copied onto another case does not
unwrap.  The KMS endpoint, region and credentials come from the standard AWS configuration
(``AWS_ENDPOINT_URL_KMS`` / ``AWS_ENDPOINT_URL``, ``AWS_REGION``, the credential chain).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from vault.keys.errors import KeyProviderUnavailable, KeyUnavailable

__all__ = ["KMS_MAGIC", "AwsKmsKeyProvider", "split_kms_wrapped"]

KMS_MAGIC = b"KNKM"
KMS_FORMAT_VERSION = 1
_KMS_HEADER = KMS_MAGIC + bytes([KMS_FORMAT_VERSION])
CONTEXT_TAG = ("kinko", "case-key/v1")
_MAX_KEY_ID = 2048

# KMS errors that say "this ciphertext will not open for you", as opposed to an outage.
_REFUSALS = {
    "InvalidCiphertextException",
    "IncorrectKeyException",
    "NotFoundException",
    "DisabledException",
    "KMSInvalidStateException",
    "AccessDeniedException",
    "InvalidKeyUsageException",
}


def split_kms_wrapped(wrapped: bytes) -> tuple[str, bytes]:
    """Return ``(key_id, ciphertext_blob)`` of a ``KNKM`` wrapped key, or raise KeyUnavailable."""
    start = len(_KMS_HEADER)
    if len(wrapped) < start + 2 or wrapped[:start] != _KMS_HEADER:
        raise KeyUnavailable("wrapped key is not a KMS-wrapped key of a supported version")
    (id_len,) = struct.unpack(">H", wrapped[start : start + 2])
    body = start + 2 + id_len
    if id_len == 0 or len(wrapped) <= body:
        raise KeyUnavailable("KMS-wrapped key is malformed")
    try:
        key_id = wrapped[start + 2 : body].decode("ascii")
    except UnicodeDecodeError:
        raise KeyUnavailable("KMS-wrapped key is malformed") from None
    return key_id, wrapped[body:]


def _client_error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


class AwsKmsKeyProvider:
    """Wraps case keys with KMS ``Encrypt``/``Decrypt`` under one KMS key (symmetric)."""

    def __init__(self, client: Any, key_id: str, key_arn: str) -> None:
        self._client = client
        self._requested = key_id
        self._arn = key_arn

    @property
    def name(self) -> str:
        return "aws-kms"

    @property
    def client(self) -> Any:
        return self._client

    @classmethod
    def connect(cls, key_id: str, *, client: Any = None) -> AwsKmsKeyProvider:
        """Build a KMS client and check at once that ``key_id`` is usable for wrapping.

        Raises :class:`KeyProviderUnavailable` with the reason, so a server refuses to start
        instead of failing the first case creation.
        """
        if client is None:
            import boto3

            try:
                client = boto3.client("kms")
            except Exception as exc:  # no region, bad profile, ...
                raise KeyProviderUnavailable(f"cannot create a KMS client: {exc}") from exc
        try:
            meta = client.describe_key(KeyId=key_id)["KeyMetadata"]
        except Exception as exc:
            code = _client_error_code(exc) or type(exc).__name__
            raise KeyProviderUnavailable(
                f"KMS key {key_id!r} is not usable ({code}): {exc}"
            ) from exc
        if meta.get("KeyState", "Enabled") != "Enabled":
            raise KeyProviderUnavailable(f"KMS key {key_id!r} is {meta.get('KeyState')}")
        if meta.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
            raise KeyProviderUnavailable(f"KMS key {key_id!r} is not an encryption key")
        return cls(client, key_id, str(meta.get("Arn") or meta["KeyId"]))

    def rewrap_to(self, key_id: str) -> AwsKmsKeyProvider:
        """A provider on the same client whose new wraps use ``key_id`` (checked first)."""
        return type(self).connect(key_id, client=self._client)

    def current_key_id(self) -> str:
        return self._arn

    @staticmethod
    def _context(context: Mapping[str, str]) -> dict[str, str]:
        if CONTEXT_TAG[0] in context:
            raise ValueError(f"context key {CONTEXT_TAG[0]!r} is reserved")
        return {**context, CONTEXT_TAG[0]: CONTEXT_TAG[1]}

    def wrap(self, key: bytes, context: Mapping[str, str]) -> bytes:
        try:
            resp = self._client.encrypt(
                KeyId=self._arn, Plaintext=key, EncryptionContext=self._context(context)
            )
        except ValueError:
            raise
        except Exception as exc:
            raise KeyUnavailable(f"KMS Encrypt failed: {exc}") from exc
        used = str(resp.get("KeyId") or self._arn).encode("ascii")
        if not 0 < len(used) <= _MAX_KEY_ID:
            raise KeyUnavailable("KMS returned an unusable key id")
        blob = bytes(resp["CiphertextBlob"])
        return _KMS_HEADER + struct.pack(">H", len(used)) + used + blob

    def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        key_id, blob = split_kms_wrapped(wrapped)
        try:
            resp = self._client.decrypt(
                CiphertextBlob=blob, KeyId=key_id, EncryptionContext=self._context(context)
            )
        except ValueError:
            raise KeyUnavailable("context uses a reserved key") from None
        except Exception as exc:
            code = _client_error_code(exc)
            if code in _REFUSALS:
                raise KeyUnavailable(
                    f"KMS refused to unwrap ({code}): wrong context, key or tampered data"
                ) from None
            raise KeyUnavailable(f"KMS Decrypt failed: {exc}") from exc
        plaintext = bytes(resp["Plaintext"])
        if len(plaintext) != 32:
            raise KeyUnavailable("KMS returned a key of the wrong size")
        return plaintext

    def key_ids_of(self, wrapped: bytes) -> str:
        return split_kms_wrapped(wrapped)[0]
