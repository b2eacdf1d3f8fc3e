"""Session lifetimes (idle and absolute ends) and password rules, on a vault in process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from vault.audit.records import RequestInfo
from vault.authz.guard import ANONYMOUS
from vault.catalog.models import User, WebSession
from vault.core import Vault
from vault.errors import BadRequest
from vault.services import accounts
from vault.services.context import Ctx
from vault.services.passwords import check_new_password, hash_password, verify_password
from vault.settings import Settings


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    v = Vault.open(Settings(data_dir=tmp_path / "data"), server=True)
    try:
        yield v
    finally:
        v.close()


def _signed_in(vault: Vault) -> str:
    with vault.write_session() as s:
        s.add(
            User(
                name="sess",
                roles="",
                created_at=accounts.utcnow(),
                password_hash=hash_password("a long enough passphrase"),
            )
        )
        s.commit()
    info = RequestInfo(ip="192.0.2.7", user_agent="test", device=None, request_id="r1")
    return accounts.sign_in(Ctx(vault, ANONYMOUS, info), "sess", "a long enough passphrase").secret


def _age(vault: Vault, secret: str, **shift: timedelta) -> None:
    digest = accounts._digest(secret)
    with vault.write_session() as s:
        row = s.scalar(select(WebSession).where(WebSession.id_hash == digest))
        assert row is not None
        values = {name: getattr(row, name) - delta for name, delta in shift.items()}
        s.execute(update(WebSession).where(WebSession.id_hash == digest).values(**values))
        s.commit()


def _ended(vault: Vault, secret: str) -> str | None:
    with vault.read_session() as s:
        row = s.scalar(select(WebSession).where(WebSession.id_hash == accounts._digest(secret)))
        assert row is not None
        return row.ended_reason


def test_a_session_ends_after_30_idle_minutes(vault: Vault) -> None:
    secret = _signed_in(vault)
    signed = accounts.session_principal(vault, secret)
    assert signed is not None
    assert signed.principal.name == "sess"
    assert signed.principal.token_issuer is None
    _age(vault, secret, last_seen_at=timedelta(minutes=29))
    assert accounts.session_principal(vault, secret) is not None  # and that request counts
    _age(vault, secret, last_seen_at=timedelta(minutes=30, seconds=1))
    assert accounts.session_principal(vault, secret) is None
    assert _ended(vault, secret) == "idle"


def test_a_session_ends_12_hours_after_sign_in_however_busy(vault: Vault) -> None:
    secret = _signed_in(vault)
    with vault.read_session() as s:
        row = s.scalar(select(WebSession))
        assert row is not None
        assert row.expires_at - row.created_at == timedelta(hours=12)
    # Signed in 12 hours and a second ago, and used a moment ago: it has ended all the same.
    _age(vault, secret, expires_at=timedelta(hours=12, seconds=1))
    assert accounts.session_principal(vault, secret) is None
    assert _ended(vault, secret) == "absolute"


def test_the_session_secret_is_kept_only_as_a_hash(vault: Vault) -> None:
    secret = _signed_in(vault)
    with vault.read_session() as s:
        stored = s.scalars(select(WebSession.id_hash)).all()
        user = s.scalar(select(User).where(User.name == "sess"))
    assert secret not in stored
    assert user is not None
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert "a long enough passphrase" not in user.password_hash
    assert accounts.session_principal(vault, "x" * 43) is None


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("elevenchars", "password_too_short"),
        ("Tanaka.Hanako", "password_is_name"),
        ("tanaka-hanako-1", "password_is_name"),
        ("password1234", "password_common"),
        ("Passw0rd!Passw0rd!", "password_common"),
        ("iloveyou2026!", "password_common"),
        ("aaaaaaaaaaaaaaaa", "password_common"),
        ("1qaz2wsx3edc", "password_common"),
        ("20261201-0930", "password_common"),
        ("kinkokinko2026", "password_common"),
    ],
)
def test_refused_passwords(password: str, code: str) -> None:
    with pytest.raises(BadRequest) as refused:
        check_new_password("tanaka.hanako", password, password)
    assert refused.value.code == code


@pytest.mark.parametrize(
    "password", ["correct horse battery staple", "入札の準備は慎重に進めよう", "Tq7#mW2v!pLx"]
)
def test_accepted_passwords(password: str) -> None:
    check_new_password("tanaka.hanako", password, password)
    stored = hash_password(password)
    assert verify_password(stored, password)
    assert not verify_password(stored, password + "x")
    assert not verify_password(None, password)
