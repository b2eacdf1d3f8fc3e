"""One settings class for every entry point (server, CLI); values come from ``KINKO_*``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vault.db import normalize_url

_DATABASE_SCHEMES = ("sqlite:", "postgresql://", "postgresql+psycopg://", "postgres://")


def default_policies_dir() -> Path:
    """Where the shipped Casbin model and tables live.

    An installed wheel carries them inside the package (``vault/_policies``); a source checkout
    keeps them in the top-level ``policies/`` folder, which is the one operators edit.
    """
    here = Path(__file__).resolve().parent
    packaged = here / "_policies"
    if (packaged / "model.conf").is_file():
        return packaged
    return here.parent / "policies"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KINKO_", extra="ignore")

    data_dir: Path = Field(default=Path("kinko-data"))
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, le=65535)

    # The catalog (cases, documents, versions, members, tokens) and the audit log are two
    # stores: the audit log must be able to fail on its own, and a read must then fail too.
    database_url: str | None = None
    audit_database_url: str | None = None
    # The database password as a file (a mounted secret), for URLs that name a user but no
    # password: a password written into KINKO_DATABASE_URL would sit in the environment.
    database_password_file: Path | None = None
    storage: Literal["local", "s3"] = "local"
    key_provider: Literal["local", "aws-kms"] = "local"
    # S3-compatible blob storage (AWS S3, MinIO, Ceph, moto).  Region and credentials come from
    # the standard AWS chain (AWS_REGION, AWS_ACCESS_KEY_ID, profiles, instance roles, ...).
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_prefix: str = ""
    # AWS KMS key provider: the KMS key that wraps case keys.  The KMS endpoint comes from the
    # standard AWS configuration (AWS_ENDPOINT_URL_KMS or AWS_ENDPOINT_URL), as boto3 reads it.
    kms_key_id: str | None = None
    # WORM anchoring: every signed checkpoint is also written to this bucket with S3 Object
    # Lock in compliance mode, so the operator cannot rewrite history unnoticed.  The bucket
    # must have been created with Object Lock enabled.
    audit_anchor_bucket: str | None = None
    audit_anchor_prefix: str = "kinko-checkpoints/"
    audit_anchor_retention_days: int = Field(default=3650, ge=1, le=36500)
    policies_dir: Path = Field(default_factory=default_policies_dir)
    # The keys every node of one vault shares (a mounted secret, say), while each node has a
    # data directory of its own.  Absent files are created once, exclusively (0600, O_EXCL):
    # nodes starting together end up reading the same key, never two.  The master key file
    # is unused with the aws-kms provider.
    master_key_file: Path | None = None
    audit_signing_key_file: Path | None = None
    # The server key of HMACs that another node must be able to check: CSRF tokens, the
    # keys of sign-in throttling, idempotency fingerprints.  Shared like the two above.
    server_key_file: Path | None = None

    bootstrap_token: SecretStr | None = None
    timezone: str = "UTC"
    # How long an audit append may wait for the audit store before the request fails with 503.
    audit_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Largest number of events committed together by the audit writer (group commit).
    audit_batch_max: int = Field(default=256, ge=1, le=10000)
    # Checkpoints are cut at least this often while events arrive (SPEC §5: at most 10 s).
    checkpoint_interval_seconds: float = Field(default=10.0, gt=0, le=10)
    token_default_ttl_seconds: int = Field(default=90 * 24 * 3600, ge=60)
    # Uploads streaming at once, each holding a worker thread while its body arrives; the rest
    # wait (holding no thread), so slow uploads never starve the other requests.
    upload_concurrency: int = Field(default=16, ge=1, le=1000)
    # An upload whose body sends nothing for this long is refused (408) and leaves nothing.
    upload_idle_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    # How long a node keeps what the catalog said about a token (vault.catalog.cache): its own
    # changes apply at once, another node's or the CLI's within this bound (0 turns it off).
    cache_seconds: float = Field(default=1.0, ge=0, le=1.0)
    # The address users reach Kinko at (``https://kinko.example.go.jp``): links Kinko hands
    # out (invitations) are built from it, and an ``https://`` address makes the session
    # cookie Secure with the ``__Host-`` prefix.  Unset, links use the request's own origin.
    public_url: str | None = None
    # Web sessions end after this long without a request, and this long after sign-in
    # whatever happens (issue 10: 30 minutes and 12 hours).
    session_idle_seconds: int = Field(default=30 * 60, ge=60, le=24 * 3600)
    session_max_seconds: int = Field(default=12 * 3600, ge=300, le=7 * 24 * 3600)
    # Sign-in throttling: this many failures for one user name (or from one client address)
    # within the window refuse further attempts until the lockout has passed quietly.
    signin_window_seconds: int = Field(default=15 * 60, ge=60)
    signin_user_failures: int = Field(default=10, ge=1)
    signin_address_failures: int = Field(default=100, ge=1)
    signin_lockout_seconds: int = Field(default=60, ge=1)
    # An invitation link stays valid this long (issue 10: 72 hours).
    invitation_ttl_seconds: int = Field(default=72 * 3600, ge=300, le=30 * 24 * 3600)

    # Notifications by e-mail (issue 12): ``smtp://host:port`` (STARTTLS when the server
    # offers it) or ``smtps://user:password@host:port``.  Unset, notifications are kept and
    # shown in Kinko only, and disclosure links reach the recipient through the approver.
    smtp_url: SecretStr | None = None
    # The sender of every message, and the office named as the sender on disclosure pages.
    mail_from: str = "kinko@localhost.localdomain"
    organization: str = "Kinko"
    # How often each node looks for mail to send and for overdue contact reports.
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    overdue_sweep_seconds: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or not v.get_secret_value().strip():
            return None
        from vault.mail import parse_smtp_url

        parse_smtp_url(v.get_secret_value().strip())
        return SecretStr(v.get_secret_value().strip())

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, v: str) -> str:
        from vault.domain import DomainError, validate_email

        try:
            return validate_email(v.strip())
        except DomainError as exc:
            raise ValueError(f"KINKO_MAIL_FROM: {exc.message}") from None

    @field_validator("public_url")
    @classmethod
    def _origin_only(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip().rstrip("/")
        scheme, sep, rest = v.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or any(c in rest for c in "?#"):
            raise ValueError("public_url must look like https://host[:port][/path]")
        return v

    @field_validator("database_url", "audit_database_url")
    @classmethod
    def _supported_database(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if not v.startswith(_DATABASE_SCHEMES):
            raise ValueError(
                "database URLs must be sqlite:///PATH or "
                "postgresql+psycopg://USER[:PASSWORD]@HOST:PORT/DB (postgresql:// means the same)"
            )
        return v

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("bootstrap_token")
    @classmethod
    def _strong_bootstrap(cls, v: SecretStr | None) -> SecretStr | None:
        # A guessable bootstrap token would hand out the admin account, so short values are
        # refused rather than accepted with a warning.
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("KINKO_BOOTSTRAP_TOKEN must be at least 16 characters")
        return v

    @model_validator(mode="after")
    def _backend_settings_complete(self) -> Settings:
        # A half-configured backend is refused at start-up, not at the first upload.
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("KINKO_STORAGE=s3 needs KINKO_S3_BUCKET")
        if self.key_provider == "aws-kms" and not self.kms_key_id:
            raise ValueError("KINKO_KEY_PROVIDER=aws-kms needs KINKO_KMS_KEY_ID")
        return self

    @property
    def catalog_url(self) -> str:
        if self.database_url:
            return self._with_password(normalize_url(self.database_url))
        return f"sqlite:///{self.data_dir.resolve() / 'catalog.db'}"

    @property
    def audit_url(self) -> str:
        if self.audit_database_url:
            return self._with_password(normalize_url(self.audit_database_url))
        return f"sqlite:///{self.data_dir.resolve() / 'audit.db'}"

    def _with_password(self, url: str) -> str:
        if self.database_password_file is None or url.startswith("sqlite"):
            return url
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.password is not None:
            return url
        password = self.database_password_file.read_text().strip()
        return parsed.set(password=password).render_as_string(hide_password=False)

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def master_key_path(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def link_base(self) -> str:
        """Where links Kinko prints outside a request point (invitations at start-up or from
        ``kinko users invite``): KINKO_PUBLIC_URL, else the address the server listens on."""
        if self.public_url:
            return self.public_url
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the address, not binding it
            host = "127.0.0.1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def server_key_path(self) -> Path:
        return self.server_key_file or self.data_dir / "idempotency.key"

    @property
    def audit_signing_key_path(self) -> Path:
        return self.audit_signing_key_file or self.data_dir / "audit-signing.key"
