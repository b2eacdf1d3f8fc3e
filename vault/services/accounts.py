"""Web accounts: invitations, password sign-in, sessions and sign-in throttling.

API tokens stay what the sync client and scripts use; a person at a browser signs in with a
password set through a one-time invitation link and holds a session.  Sessions live in the
catalog database so that every node sees them, and only hashes of their secrets are kept:
a copy of the database hands out no session and no invitation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from vault.audit.records import cli_record
from vault.authz import Principal
from vault.catalog.models import Invitation, SignInFailure, User, WebSession
from vault.catalog.types import utcnow
from vault.core import Vault
from vault.db import STORE_ERRORS, writer
from vault.errors import (
    BadRequest,
    Forbidden,
    Gone,
    KinkoError,
    NotFound,
    StoreUnavailable,
    TooManyRequests,
    Unauthenticated,
)
from vault.services.context import Ctx, iso
from vault.services.notifications import notify_about_user
from vault.services.passwords import check_new_password, hash_password, verify_password

INVITATION_PATH = "/ui/invitation/"
# A session's last request is written at most this often: an idle timeout of minutes does
# not need a write on every page view.
SEEN_GRANULARITY = timedelta(seconds=60)
SIGN_IN_FAILED = "user name or password is wrong"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _keyed(vault: Vault, purpose: str, value: str) -> str:
    """An HMAC of ``value`` with the server key, separated by ``purpose``."""
    message = purpose.encode() + b"\0" + value.encode()
    return hmac.new(vault.idempotency_secret, message, hashlib.sha256).hexdigest()


# -- CSRF ------------------------------------------------------------------------------------


def csrf_token(vault: Vault, binding: str) -> str:
    """The CSRF token of forms shown to the holder of ``binding`` (a session secret, or the
    pre-session nonce of a signed-out browser).  A third-party page can neither read it nor
    compute it, so a forged form post lacks it."""
    return _keyed(vault, "csrf", binding)


def csrf_valid(vault: Vault, binding: str | None, presented: str | None) -> bool:
    if not binding or not presented:
        return False
    return hmac.compare_digest(csrf_token(vault, binding), presented)


# -- invitations -----------------------------------------------------------------------------


def _issue_invitation(
    vault: Vault, s: Session, name: str, created_by: int | None, now: datetime
) -> tuple[str, datetime]:
    user = s.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound("user not found", code="user_not_found")
    if user.disabled:
        raise BadRequest("the user is disabled; enable them first", code="user_disabled")
    s.execute(
        update(Invitation)
        .where(Invitation.user_id == user.id, Invitation.used_at.is_(None))
        .values(used_at=now)
    )
    secret = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=vault.settings.invitation_ttl_seconds)
    s.add(
        Invitation(
            id=secrets.token_hex(8),
            user_id=user.id,
            token_hash=_digest(secret),
            created_at=now,
            created_by=created_by,
            expires_at=expires,
        )
    )
    return secret, expires


def _link(base_url: str, secret: str, expires: datetime) -> dict[str, Any]:
    return {"url": base_url.rstrip("/") + INVITATION_PATH + secret, "expires_at": iso(expires)}


def invite(ctx: Ctx, name: str, base_url: str) -> dict[str, Any]:
    """A one-time link for ``name`` to set a password with (admin only); it replaces any
    earlier unused invitation of theirs.  The link is shown once; only its hash is kept."""
    with ctx.scope("invitation.create", target=name) as ev:
        ctx.vault.guard.require_admin(ctx.principal)
        with ctx.vault.write_session() as s:
            secret, expires = _issue_invitation(
                ctx.vault, s, name, ctx.principal.user_id, ctx.now()
            )
            ev.allow()
            s.commit()
    return _link(base_url, secret, expires)


def invite_as_operator(vault: Vault, name: str, base_url: str) -> dict[str, Any]:
    """``kinko users invite``: the operator, who holds the data directory, invites a user."""
    with vault.write_session() as s:
        secret, expires = _issue_invitation(vault, s, name, None, utcnow())
        vault.audit.append_many([cli_record("users invite", "invitation.create", target=name)])
        s.commit()
    return _link(base_url, secret, expires)


def _open_invitation(s: Session, secret: str, now: datetime) -> tuple[Invitation, User]:
    found = None
    if 20 <= len(secret) <= 100:
        found = s.execute(
            select(Invitation, User)
            .join(User, User.id == Invitation.user_id)
            .where(Invitation.token_hash == _digest(secret))
        ).first()
    if found is None:
        raise NotFound("unknown invitation link", code="invitation_not_found")
    inv, user = found
    if inv.used_at is not None:
        raise Gone("this invitation link was already used", code="invitation_used")
    if inv.expires_at <= now:
        raise Gone("this invitation link has expired", code="invitation_expired")
    if user.disabled:
        raise Gone("this invitation link is no longer valid", code="invitation_expired")
    return inv, user


def invitation_user(vault: Vault, secret: str) -> str:
    """The user name an invitation link is for (to greet them); 404/410 when unusable.

    Looking is not using: mail scanners that follow links consume nothing.
    """
    with vault.read_session() as s:
        _, user = _open_invitation(s, secret, utcnow())
        return user.name


@dataclass(frozen=True)
class NewSession:
    secret: str
    user_name: str


def redeem(
    ctx: Ctx, secret: str, password: str, confirm: str, replaces: str | None = None
) -> NewSession:
    """Set the password an invitation allows, end the user's other sessions (a reset may
    follow a stolen password) and sign the browser in (ending ``replaces``, the session the
    browser held, if any).

    When someone else issued the invitation (an admin), the user and the supervisors of their
    cases are notified: whoever held the link could have set the password, and they should
    know it was set.
    """
    with ctx.scope("invitation.redeem") as ev:
        with ctx.vault.read_session() as s:
            _, user = _open_invitation(s, secret, ctx.now())
            name = user.name
        ev.actor = name
        ev.set(target=name)
        check_new_password(name, password, confirm)
        # Hashing takes a tenth of a second and much memory: done before the write lock.
        hashed = hash_password(password)
        with ctx.vault.write_session() as s:
            now = ctx.now()
            inv, user = _open_invitation(s, secret, now)
            # Used at most once, whatever the concurrency: only the update that finds the
            # invitation unused counts.
            used = s.execute(
                update(Invitation)
                .where(Invitation.id == inv.id, Invitation.used_at.is_(None))
                .values(used_at=now)
            )
            if not getattr(used, "rowcount", 0):
                raise Gone("this invitation link was already used", code="invitation_used")
            user.password_hash = hashed
            user.password_set_at = now
            end_sessions(s, user.id, now, "password_reset")
            if replaces is not None:
                _end_one(s, replaces, now, "replaced")
            if inv.created_by is not None and inv.created_by != user.id:
                notify_about_user(
                    s, user.id, "password.set_by_invitation", inv.created_by, None, now
                )
            new = _start_session(ctx, s, user, now, "invitation")
            ev.allow("invited_by_other" if inv.created_by != user.id else "ok")
            s.commit()
            return new


# -- sign-in ---------------------------------------------------------------------------------


def _reserve_attempt(ctx: Ctx, user_key: str, ip: str, now: datetime) -> int | None:
    """Count an attempt before its password is checked; None when throttled.

    The count and the insert are one transaction under the catalog's write lock, so parallel
    attempts cannot all pass the check before any of them is counted.  The row stays as a
    failure unless the sign-in succeeds (``_release``).  Throttled attempts write nothing:
    the lockout runs from the last counted failure, and a refused attempt costs a read.
    """
    st = ctx.vault.settings
    window = timedelta(seconds=st.signin_window_seconds)
    lockout = timedelta(seconds=st.signin_lockout_seconds)
    with writer(ctx.vault.catalog_engine).begin() as conn:
        # Old failures of every name go, so the table holds one window's worth at most.
        conn.execute(delete(SignInFailure).where(SignInFailure.at <= now - window))
        for column, key, limit in (
            (SignInFailure.user_key, user_key, st.signin_user_failures),
            (SignInFailure.client_ip, ip, st.signin_address_failures),
        ):
            count, latest = conn.execute(
                select(func.count(), func.max(SignInFailure.at)).where(column == key)
            ).one()
            if count >= limit and latest is not None and now - latest < lockout:
                return None
        row = conn.execute(
            insert(SignInFailure)
            .values(user_key=user_key, client_ip=ip, at=now)
            .returning(SignInFailure.id)
        ).scalar_one()
        return int(row)


def _release(ctx: Ctx, attempt: int) -> None:
    """A successful sign-in is not a failure: its reserved row goes."""
    try:
        with writer(ctx.vault.catalog_engine).begin() as conn:
            conn.execute(delete(SignInFailure).where(SignInFailure.id == attempt))
    except STORE_ERRORS:
        pass  # it then counts against the user for one window, which is the safe side


def sign_in(ctx: Ctx, name: str, password: str, replaces: str | None = None) -> NewSession:
    """A new session for the right name and password; 401 (the same answer and the same
    work whether the user exists or not) or 429 while throttled, each an ``auth.fail``.
    ``replaces`` is the session the browser held before, which ends."""
    now = ctx.now()
    ip = ctx.info.ip or "unknown"
    user_key = _keyed(ctx.vault, "sign-in", name.strip().lower())
    with ctx.vault.read_session() as s:
        user = s.scalar(select(User).where(User.name == name)) if len(name) <= 64 else None
    # Only a real user's name goes into the log: a name field sometimes holds a password.
    actor = user.name if user is not None else None
    failure: KinkoError | None = None
    attempt: int | None = None
    try:
        attempt = _reserve_attempt(ctx, user_key, ip, now)
    except STORE_ERRORS:
        # Fail closed: an attempt that cannot be counted is not checked.
        failure = StoreUnavailable("the vault is busy; try again", code="store_unavailable")
    if failure is None and attempt is None:
        failure = TooManyRequests(
            "too many failed sign-ins; wait a minute and try again", code="sign_in_throttled"
        )
    if failure is None:
        matches = verify_password(user.password_hash if user is not None else None, password)
        if user is None or not matches or user.disabled:
            disabled = user is not None and user.disabled and matches
            code = "user_disabled" if disabled else "bad_credentials"
            failure = Unauthenticated(SIGN_IN_FAILED, code=code)
    if failure is not None or user is None or attempt is None:
        with ctx.scope("auth.fail", target=actor) as ev:
            ev.actor = actor
            raise failure or Unauthenticated(SIGN_IN_FAILED, code="bad_credentials")
    _release(ctx, attempt)
    with ctx.scope("auth.sign_in", target=user.name) as ev:
        ev.actor = user.name
        with ctx.vault.write_session() as s:
            fresh = s.get(User, user.id)
            assert fresh is not None
            if replaces is not None:
                _end_one(s, replaces, now, "replaced")
            new = _start_session(ctx, s, fresh, now, "password")
            ev.allow()
            s.commit()
            return new


def _start_session(ctx: Ctx, s: Session, user: User, now: datetime, method: str) -> NewSession:
    secret = secrets.token_urlsafe(32)
    s.add(
        WebSession(
            id_hash=_digest(secret),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=ctx.vault.settings.session_max_seconds),
            client_ip=(ctx.info.ip or "")[:64] or None,
            method=method,
        )
    )
    return NewSession(secret, user.name)


def end_sessions(s: Session, user_id: int, now: datetime, reason: str) -> int:
    """End every open session of a user (on disabling, or a password reset)."""
    result = s.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
        .values(ended_at=now, ended_reason=reason)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def sign_out(ctx: Ctx, secret: str) -> None:
    scope = ctx.scope("auth.sign_out", target=ctx.principal.name)
    with scope as ev, ctx.vault.write_session() as s:
        _end_one(s, secret, ctx.now(), "signed_out")
        ev.allow()
        s.commit()


def _end_one(s: Session, secret: str, now: datetime, reason: str) -> None:
    s.execute(
        update(WebSession)
        .where(WebSession.id_hash == _digest(secret), WebSession.ended_at.is_(None))
        .values(ended_at=now, ended_reason=reason)
    )


# -- sessions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    # The sign-in before this session's, which every page footer shows, so that a user
    # notices one they did not make.
    previous_sign_in: datetime | None
    previous_ip: str | None


def session_principal(vault: Vault, secret: str | None) -> SignedIn | None:
    """Who holds the session ``secret``; None when there is none, or it has ended (idle,
    past its absolute end, signed out, its user disabled)."""
    if not secret or len(secret) > 100:
        return None
    now = utcnow()
    idle = timedelta(seconds=vault.settings.session_idle_seconds)
    digest = _digest(secret)
    with vault.read_session() as s:
        row = s.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.id_hash == digest)
        ).first()
        if row is None:
            return None
        sess, user = row
        if sess.ended_at is not None or user.disabled:
            return None
        ended = None
        if sess.expires_at <= now:
            ended = "absolute"
        elif sess.last_seen_at + idle <= now:
            ended = "idle"
        previous = s.execute(
            select(WebSession.created_at, WebSession.client_ip)
            .where(WebSession.user_id == user.id, WebSession.created_at < sess.created_at)
            .order_by(WebSession.created_at.desc())
            .limit(1)
        ).first()
        principal = Principal(user.id, user.name, frozenset(user.role_list))
    if ended is not None:
        _touch(vault, digest, now, ended)
        return None
    if now - sess.last_seen_at >= SEEN_GRANULARITY:
        _touch(vault, digest, now, None)
    return SignedIn(
        principal,
        previous[0] if previous is not None else None,
        previous[1] if previous is not None else None,
    )


def _touch(vault: Vault, digest: str, now: datetime, ended: str | None) -> None:
    values: dict[str, Any] = {"last_seen_at": now}
    if ended is not None:
        values = {"ended_at": now, "ended_reason": ended}
    try:
        with writer(vault.catalog_engine).begin() as conn:
            conn.execute(
                update(WebSession)
                .where(WebSession.id_hash == digest, WebSession.ended_at.is_(None))
                .values(**values)
            )
    except STORE_ERRORS:
        pass  # Best effort, like a token's last use; the next request tries again.


def recent_sign_ins(ctx: Ctx, limit: int = 10) -> list[dict[str, Any]]:
    """The caller's latest sign-ins, newest first, for their account page."""
    if ctx.principal.anonymous:
        raise Forbidden("sign in first", code="forbidden")
    with ctx.vault.read_session() as s:
        rows = s.scalars(
            select(WebSession)
            .where(WebSession.user_id == ctx.principal.user_id)
            .order_by(WebSession.created_at.desc())
            .limit(limit)
        ).all()
        return [
            {
                "at": r.created_at,
                "client_ip": r.client_ip,
                "method": r.method,
                "active": r.ended_at is None and r.expires_at > ctx.now(),
            }
            for r in rows
        ]
