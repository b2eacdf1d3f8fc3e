"""Users, tokens and authentication."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from vault.audit.records import RequestInfo, build_record, system_info
from vault.audit.scope import AuditScope
from vault.authz import Principal
from vault.authz.guard import ANONYMOUS
from vault.catalog.models import Case, Membership, Notification, Token, User
from vault.catalog.queries import user_names
from vault.catalog.types import utcnow
from vault.core import Vault
from vault.db import STORE_ERRORS, writer
from vault.domain import DomainError, validate_email, validate_global_roles, validate_user_name
from vault.errors import BadRequest, Conflict, NotFound, Unauthenticated
from vault.services import idempotency
from vault.services.accounts import end_sessions
from vault.services.context import Ctx, JsonBody, iso
from vault.services.notifications import notify_about_user
from vault.services.schemas import TokenCreate, UserCreate, UserUpdate

TOKEN_PREFIX = "kinko_"  # noqa: S105 - a public prefix, not a secret.
BOOTSTRAP_TTL = timedelta(days=3650)

log = logging.getLogger("kinko.users")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    # A recognisable prefix lets secret scanners find leaked tokens.
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _bearer(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def cached_principal(vault: Vault, authorization: str | None) -> Principal | None:
    """The caller from the token cache, without touching the database; None when unknown.

    This is the whole of authentication for most requests, so it runs on the event loop; a
    miss (or anything refused) goes the full way through ``authenticate`` in a worker thread.
    """
    if authorization is None:
        return ANONYMOUS
    token = _bearer(authorization)
    if token is None:
        return None
    hit = vault.tokens.get(hash_token(token))
    if hit is None:
        return None
    principal, expires_at = hit
    # A cached token still expires on time: past its instant the full path refuses it.
    return principal if expires_at > utcnow() else None


def authenticate(vault: Vault, info: RequestInfo, authorization: str | None) -> Principal:
    """Resolve ``Authorization: Bearer``; a missing header is anonymous, a bad one is 401.

    Failed attempts are logged as ``auth.fail`` (and re-raised), so the log shows token guessing.
    Accepted tokens are remembered in ``vault.tokens`` (see ``vault.catalog.cache`` for how
    long, and why a revocation still applies at once).
    """
    if authorization is None:
        return ANONYMOUS
    token = _bearer(authorization)
    actor: str | None = None
    issuer: str | None = None
    reason = "invalid_token"
    principal: Principal | None = None
    last_used: datetime | None = None
    if token is not None:
        digest = hash_token(token)
        stamp = vault.tokens.stamp()
        with vault.read_session() as s:
            row = s.execute(
                select(Token, User)
                .join(User, User.id == Token.user_id)
                .where(Token.token_hash == digest)
            ).first()
            if row is not None:
                tok, user = row.tuple()
                actor = user.name
                if tok.revoked_at is not None:
                    reason = "token_revoked"
                elif tok.expires_at <= utcnow():
                    reason = "token_expired"
                elif user.disabled:
                    reason = "user_disabled"
                if tok.issued_by is not None and tok.issued_by != user.id:
                    issuer = s.scalar(select(User.name).where(User.id == tok.issued_by))
                if reason == "invalid_token":
                    principal = Principal(
                        user.id,
                        user.name,
                        frozenset(user.role_list),
                        token_issuer=issuer,
                        token_id=tok.id,
                    )
                    vault.tokens.put(digest, (principal, tok.expires_at), stamp)
                    last_used = tok.last_used_at
        if principal is not None:
            note_token_use(vault, principal.token_id, last_used)
            return principal
    else:
        reason = "malformed_authorization"
    # A refused marked token still names its issuer, like every event made with it.
    ctx = Ctx(vault, Principal(None, actor, token_issuer=issuer), info)
    with ctx.scope("auth.fail"):
        raise Unauthenticated("invalid, expired or revoked token", code=reason)


# "Last used" is kept to the minute: writing it on every request would put every request
# behind the catalog's write lock, while once a minute per token costs nothing that matters.
TOKEN_USE_GRANULARITY = timedelta(seconds=60)


def note_token_use(vault: Vault, token_id: str | None, last_used: datetime | None) -> None:
    """Record that a token authenticated a request now, at most once per granularity step.

    Best effort: a catalog too busy to take the write must not fail the request the token
    was presented for, so the failure is logged and the next request tries again.  The write
    goes through a plain connection, not a write session, on purpose: a committed write
    session empties the token cache (``vault.catalog.cache``), and a last-use time changes
    nothing the cache holds, so it must not cost every other token a database look-up.  As
    authentication reaches here only on a cache miss, the recorded time is at most the cache's
    lifetime older than the last use, within the granularity anyway.
    """
    now = utcnow()
    if token_id is None or (last_used is not None and now - last_used < TOKEN_USE_GRANULARITY):
        return
    try:
        with writer(vault.catalog_engine).begin() as conn:
            conn.execute(
                update(Token)
                .where(
                    Token.id == token_id,
                    or_(
                        Token.last_used_at.is_(None),
                        Token.last_used_at < now - TOKEN_USE_GRANULARITY,
                    ),
                )
                .values(last_used_at=now)
            )
    except STORE_ERRORS:
        log.warning("could not record the use of token %s; the next request will", token_id)


def require_signed_in(ctx: Ctx) -> None:
    if ctx.principal.anonymous:
        with ctx.scope("auth.fail"):
            raise Unauthenticated("authentication required", code="missing_token")


def bootstrap(vault: Vault) -> str | None:
    """On first start with no users, create ``admin``; return a generated token to print once."""
    configured = vault.settings.bootstrap_token
    with vault.write_session() as s:
        if s.scalar(select(func.count()).select_from(User)):
            return None
        token = configured.get_secret_value() if configured else new_token()
        now = utcnow()
        user = User(name="admin", display_name="Administrator", roles="admin", created_at=now)
        s.add(user)
        s.flush()
        tok = Token(
            id=secrets.token_hex(8),
            user_id=user.id,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + BOOTSTRAP_TTL,
        )
        s.add(tok)
        info = system_info("bootstrap")
        vault.audit.append_many(
            [
                build_record(
                    info, actor=None, action=a, decision="allow", reason="bootstrap", target="admin"
                )
                for a in ("user.create", "token.create")
            ]
        )
        s.commit()
    return None if configured else token


def _require_admin(ctx: Ctx) -> None:
    ctx.vault.guard.require_admin(ctx.principal)


def _user(s: Any, name: str) -> User:
    user = s.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound("user not found", code="user_not_found")
    assert isinstance(user, User)
    return user


def _user_out(user: User) -> dict[str, Any]:
    """A user as an admin sees them (every caller of this is admin-only)."""
    return {
        "name": user.name,
        "display_name": user.display_name,
        "email": user.email,
        "roles": user.role_list,
        "disabled": user.disabled,
    }


def _user_row(user: User) -> dict[str, Any]:
    """A user as the admin's listings show it: whether a password is set, never its hash."""
    return {
        **_user_out(user),
        "created_at": iso(user.created_at),
        "password_set": user.password_hash is not None,
    }


def _memberships_of(s: Any, user_id: int) -> list[tuple[Membership, str]]:
    """A user's memberships (expired ones too) with their case numbers, by case number."""
    rows = s.execute(
        select(Membership, Case.number)
        .join(Case, Case.id == Membership.case_id)
        .where(Membership.user_id == user_id)
        .order_by(Case.number)
    ).all()
    return [(m, str(number)) for m, number in rows]


def _membership_item(m: Membership, number: str, active: bool) -> dict[str, Any]:
    return {
        "case_id": m.case_id,
        "case_number": number,
        "roles": m.role_list,
        "expires_at": iso(m.expires_at),
        "active": active,
    }


def me(ctx: Ctx) -> dict[str, Any]:
    with ctx.scope("user.me"), ctx.vault.read_session() as s:
        user = s.get(User, ctx.principal.user_id)
        assert user is not None
        now = ctx.now()
        memberships = [
            _membership_item(m, number, m.expires_at is None or m.expires_at > now)
            for m, number in _memberships_of(s, user.id)
        ]
        return {
            "name": user.name,
            "display_name": user.display_name,
            "email": user.email,
            "roles": user.role_list,
            "memberships": memberships,
        }


def create_user(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    with ctx.scope("user.create") as ev:
        _require_admin(ctx)
        data = body.require()
        if isinstance(data.get("name"), str):
            ev.set(target=data["name"])  # named in the log even when the rest is refused
        req = body.parse(UserCreate)
        name, display_name, roles = req.name, req.display_name, req.roles
        try:
            validate_user_name(name)
            role_list = validate_global_roles(roles)
            email = None if req.email is None else validate_email(req.email)
        except DomainError as e:
            raise BadRequest(e.message, code=e.code) from None
        _check_display_name(display_name)
        idem_key = idempotency.parse_key(ctx.idempotency_key)
        idem_scope = "user.create"
        fp = idempotency.fingerprint(ctx, "user.create", name, display_name, role_list, email)
        with ctx.vault.write_session() as s:
            rec = idempotency.lookup(s, ctx, idem_key, idem_scope, fp)
            if rec is not None:
                old = _user(s, name)
                ev.allow(reason="idempotent_replay")
                return _user_out(old)
            if s.scalar(select(User.id).where(User.name == name)) is not None:
                raise Conflict("a user with this name exists", code="user_exists")
            user = User(
                name=name,
                display_name=display_name,
                email=email,
                roles=",".join(role_list),
                created_at=ctx.now(),
            )
            s.add(user)
            try:
                s.flush()
            except IntegrityError:
                raise Conflict("a user with this name exists", code="user_exists") from None
            idempotency.remember(s, ctx, idem_key, idem_scope, fp, str(user.id))
            out = _user_out(user)
            # The allow event is committed first, then the change: a change is never unlogged.
            ev.allow()
            s.commit()
            return out


def _check_display_name(display_name: str | None) -> None:
    if display_name is not None and (len(display_name) > 255 or not display_name.strip()):
        raise BadRequest("display_name must be 1-255 characters", code="invalid_display_name")


def update_user(ctx: Ctx, name: str, body: JsonBody) -> dict[str, Any]:
    """An admin changes a user's display name, e-mail address or global roles.

    Only the fields present change; ``null`` clears a display name or an address.  The last
    enabled admin keeps the admin role, so the vault is never left without one.  Changed
    roles take effect at the user's next request, on this node at once and on the others
    through the catalog's change watcher (vault.catalog.changes).
    """
    with ctx.scope("user.update", target=name) as ev:
        _require_admin(ctx)
        req = body.parse(UserUpdate)
        given = req.model_fields_set
        if not given:
            raise BadRequest(
                "give at least one of display_name, email, roles", code="nothing_to_change"
            )
        try:
            email = None if req.email is None else validate_email(req.email)
            roles = None if req.roles is None else validate_global_roles(req.roles)
        except DomainError as e:
            raise BadRequest(e.message, code=e.code) from None
        if "roles" in given and roles is None:
            raise BadRequest("roles must be a list (use [] for none)", code="invalid_roles")
        _check_display_name(req.display_name)
        with ctx.vault.write_session() as s:
            user = _user(s, name)
            if roles is not None and "admin" in user.role_list and "admin" not in roles:
                admins = s.scalars(
                    select(User).where(User.disabled.is_(False), User.id != user.id)
                ).all()
                if user.disabled is False and not any("admin" in u.role_list for u in admins):
                    raise Conflict(
                        "this is the last enabled admin; make another user admin first",
                        code="last_admin",
                    )
            changed = []
            if "display_name" in given:
                user.display_name = req.display_name
                changed.append("display_name")
            if "email" in given:
                user.email = email
                changed.append("email")
            if roles is not None:
                user.roles = ",".join(roles)
                changed.append("roles")
            s.flush()
            out = _user_row(user)
            # The log names which fields changed, never the address itself.
            ev.allow(reason="changed:" + ",".join(changed))
            s.commit()
            return out


def _parse_ttl(ctx: Ctx, body: JsonBody) -> int:
    if ctx.idempotency_key is not None:
        # A token is shown once and only its hash is kept, so a replay could not return the
        # first result; refusing is safer than minting a second token silently.
        raise BadRequest(
            "token creation does not take an Idempotency-Key: the token is shown only once",
            code="idempotency_not_supported",
        )
    ttl_seconds = body.parse(TokenCreate).ttl_seconds
    ttl = ctx.vault.settings.token_default_ttl_seconds if ttl_seconds is None else ttl_seconds
    if not 60 <= ttl <= 10 * 365 * 24 * 3600:
        raise BadRequest("ttl_seconds must be between 60 and 315360000", code="invalid_ttl")
    return ttl


def _issuer_id(ctx: Ctx, s: Any, holder: User) -> int | None:
    """Whom a new token for ``holder`` is marked with: None for a user minting their own.

    A token minted for someone else is marked with the account that minted it; a token a
    user mints with a marked token inherits that mark, so a puppet token cannot launder
    itself by minting another.
    """
    if holder.id != ctx.principal.user_id:
        return ctx.principal.user_id
    if ctx.principal.token_issuer is not None:
        issuer = s.scalar(select(User.id).where(User.name == ctx.principal.token_issuer))
        return None if issuer is None else int(issuer)
    return None


def _mint(ctx: Ctx, s: Any, holder: User, ttl: int) -> tuple[Token, str]:
    token = new_token()
    now = ctx.now()
    tok = Token(
        id=secrets.token_hex(8),
        user_id=holder.id,
        token_hash=hash_token(token),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
        issued_by=_issuer_id(ctx, s, holder),
        parent_id=ctx.principal.token_id,
    )
    s.add(tok)
    if holder.id != ctx.principal.user_id:
        # Only when someone else mints it: a user minting a token with an inherited mark is
        # acting as themselves and was notified when the marked token was issued.
        notify_token_issued(ctx, s, holder, tok)
    return tok, token


def notify_token_issued(ctx: Ctx, s: Any, holder: User, tok: Token) -> None:
    """Tell the holder, and the supervisors of the holder's cases, once: someone else minted
    a token that acts as the holder.  Nothing waits for them; they can revoke it."""
    notify_about_user(s, holder.id, "token.issued_for_user", tok.issued_by, tok.id, ctx.now())


def revoke_with_descendants(s: Any, roots: list[str], now: Any) -> int:
    """Revoke tokens and every token minted with them, transitively; returns how many.

    Revoking a puppet token must not leave a child it minted alive (and unannounced).
    """
    seen: set[str] = set()
    frontier = list(roots)
    while frontier:
        seen.update(frontier)
        children = s.scalars(select(Token.id).where(Token.parent_id.in_(frontier))).all()
        frontier = [c for c in children if c not in seen]
    if not seen:
        return 0
    result = s.execute(
        update(Token)
        .where(Token.id.in_(sorted(seen)), Token.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)


def _token_out(tok: Token, token: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": tok.id, "expires_at": iso(tok.expires_at)}
    if token is not None:
        out = {"token": token, **out}
    return out


def create_token(ctx: Ctx, name: str, body: JsonBody) -> dict[str, Any]:
    """An admin issues a token for a user (bootstrap, service accounts); it carries the mark."""
    with ctx.scope("token.create", target=name) as ev:
        _require_admin(ctx)
        ttl = _parse_ttl(ctx, body)
        with ctx.vault.write_session() as s:
            user = _user(s, name)
            if user.disabled:
                raise Conflict("the user is disabled", code="user_disabled")
            return _issue(ctx, ev, s, user, ttl)


def create_own_token(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    """``POST /api/v1/me/tokens``: a user mints a token for themselves (sync clients)."""
    with ctx.scope("token.create", target=ctx.principal.name) as ev:
        ttl = _parse_ttl(ctx, body)
        with ctx.vault.write_session() as s:
            user = s.get(User, ctx.principal.user_id)
            if user is None or user.disabled:
                raise Unauthenticated("authentication required", code="user_disabled")
            return _issue(ctx, ev, s, user, ttl)


def _issue(ctx: Ctx, ev: AuditScope, s: Any, holder: User, ttl: int) -> dict[str, Any]:
    """Mint, record (event first, then the commit) and answer with the token shown once."""
    tok, token = _mint(ctx, s, holder, ttl)
    s.flush()
    ev.allow("issued_for_other" if tok.issued_by is not None else "ok")
    s.commit()
    issuer = None
    if tok.issued_by is not None:
        issuer = user_names(s, {tok.issued_by}).get(tok.issued_by)
    return {**_token_out(tok, token), "issued_by": issuer}


def _token_list(ctx: Ctx, s: Any, user_id: int | None) -> dict[str, Any]:
    """A user's tokens as their holder or an admin sees them: never the token or its hash."""
    rows = list(s.scalars(select(Token).where(Token.user_id == user_id).order_by(Token.created_at)))
    issuers = user_names(s, {t.issued_by for t in rows if t.issued_by is not None})
    now = ctx.now()
    return {
        "tokens": [
            {
                "id": t.id,
                "created_at": iso(t.created_at),
                "expires_at": iso(t.expires_at),
                "revoked_at": iso(t.revoked_at),
                "last_used_at": iso(t.last_used_at),
                "active": t.revoked_at is None and t.expires_at > now,
                "issued_by": issuers.get(t.issued_by) if t.issued_by else None,
            }
            for t in rows
        ]
    }


def list_own_tokens(ctx: Ctx) -> dict[str, Any]:
    with ctx.scope("token.list", target=ctx.principal.name), ctx.vault.read_session() as s:
        return _token_list(ctx, s, ctx.principal.user_id)


def revoke_own_token(ctx: Ctx, token_id: str) -> None:
    with (
        ctx.scope("token.revoke", target=ctx.principal.name) as ev,
        ctx.vault.write_session() as s,
    ):
        tok = s.get(Token, token_id) if len(token_id) <= 32 else None
        if tok is None or tok.user_id != ctx.principal.user_id:
            raise NotFound("token not found", code="token_not_found")
        revoked = revoke_with_descendants(s, [tok.id], ctx.now())
        ev.allow(f"revoked={revoked}")
        s.commit()


def list_notifications(ctx: Ctx) -> dict[str, Any]:
    """The caller's notifications, rendered from references (no stored text)."""
    with ctx.scope("notification.list"), ctx.vault.read_session() as s:
        rows = list(
            s.scalars(
                select(Notification)
                .where(Notification.user_id == ctx.principal.user_id)
                .order_by(Notification.id)
            )
        )
        names = user_names(
            s,
            {n.subject_user_id for n in rows if n.subject_user_id is not None}
            | {n.actor_user_id for n in rows if n.actor_user_id is not None},
        )
        return {
            "notifications": [
                {
                    "id": n.id,
                    "kind": n.kind,
                    "user": names.get(n.subject_user_id) if n.subject_user_id else None,
                    "by": names.get(n.actor_user_id) if n.actor_user_id else None,
                    "token_id": n.ref,
                    "created_at": iso(n.created_at),
                }
                for n in rows
            ]
        }


def revoke_token(ctx: Ctx, name: str, token_id: str) -> None:
    with ctx.scope("token.revoke", target=name) as ev:
        _require_admin(ctx)
        with ctx.vault.write_session() as s:
            user = _user(s, name)
            tok = s.get(Token, token_id) if len(token_id) <= 32 else None
            if tok is None or tok.user_id != user.id:
                raise NotFound("token not found", code="token_not_found")
            revoked = revoke_with_descendants(s, [tok.id], ctx.now())
            ev.allow(f"revoked={revoked}")
            s.commit()


def disable_user(ctx: Ctx, name: str) -> dict[str, Any]:
    with ctx.scope("user.disable", target=name) as ev:
        _require_admin(ctx)
        with ctx.vault.write_session() as s:
            user = _user(s, name)
            if user.id == ctx.principal.user_id:
                raise Conflict("you cannot disable yourself", code="cannot_disable_self")
            user.disabled = True
            now = ctx.now()
            # Tokens are revoked outright, so re-enabling a user never revives an old token.
            # So are the tokens this user issued for others (and whatever was minted with
            # them): a disabled admin's puppets must stop with the admin.
            own = s.scalars(select(Token.id).where(Token.user_id == user.id)).all()
            issued = s.scalars(select(Token.id).where(Token.issued_by == user.id)).all()
            revoked = revoke_with_descendants(s, [*own, *issued], now)
            # Signed-in browsers end with the tokens.
            ended = end_sessions(s, user.id, now, "user_disabled")
            ev.allow(f"revoked={revoked} sessions={ended}")
            s.commit()
            return {"name": user.name, "roles": user.role_list, "disabled": True}


# -- user administration (admin only) ------------------------------------------------------------


def list_users(ctx: Ctx) -> dict[str, Any]:
    with ctx.scope("user.list"):
        _require_admin(ctx)
        with ctx.vault.read_session() as s:
            return {"users": [_user_row(u) for u in s.scalars(select(User).order_by(User.name))]}


def get_user(ctx: Ctx, name: str) -> dict[str, Any]:
    """One user with their memberships; 403 for non-admins before anything is looked up."""
    with ctx.scope("user.read", target=name):
        _require_admin(ctx)
        with ctx.vault.read_session() as s:
            user = _user(s, name)
            now = ctx.now()
            rows = _memberships_of(s, user.id)
            grantors = user_names(s, {m.granted_by for m, _ in rows if m.granted_by is not None})
            return {
                **_user_row(user),
                "memberships": [
                    {
                        # A disabled user's memberships are suspended, not removed.
                        **_membership_item(
                            m,
                            number,
                            not user.disabled and (m.expires_at is None or m.expires_at > now),
                        ),
                        "granted_by": grantors.get(m.granted_by) if m.granted_by else None,
                    }
                    for m, number in rows
                ],
            }


def list_user_tokens(ctx: Ctx, name: str) -> dict[str, Any]:
    with ctx.scope("token.list", target=name):
        _require_admin(ctx)
        with ctx.vault.read_session() as s:
            return _token_list(ctx, s, _user(s, name).id)


def enable_user(ctx: Ctx, name: str) -> dict[str, Any]:
    """Re-enable a disabled user; enabling an enabled user changes nothing (idempotent).

    The tokens revoked when the user was disabled stay revoked: the user needs a new token,
    so a token that leaked while the account was off cannot come back to life with it.
    """
    with ctx.scope("user.enable", target=name) as ev:
        _require_admin(ctx)
        with ctx.vault.write_session() as s:
            user = _user(s, name)
            was_disabled = user.disabled
            user.disabled = False
            s.flush()
            ev.allow("ok" if was_disabled else "already_enabled")
            s.commit()
            return {"name": user.name, "roles": user.role_list, "disabled": False}
