"""User and token routes: the caller's own (``/me``) and the admin's (``/users``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from vault.api.deps import Body, IdemCtx, UserCtx, body_schema, public_base
from vault.api.openapi import answers
from vault.api.schemas import (
    InvitationIssued,
    Me,
    NotificationList,
    TokenIssued,
    TokenList,
    UserCreated,
    UserDetail,
    UserList,
    UserOut,
    UserState,
)
from vault.services import accounts, users
from vault.services.schemas import TokenCreate, UserCreate, UserUpdate

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.get("/me", **answers(Me))
def me(ctx: UserCtx) -> dict[str, Any]:
    return users.me(ctx)


@router.get("/me/notifications", **answers(NotificationList))
def my_notifications(ctx: UserCtx) -> dict[str, Any]:
    return users.list_notifications(ctx)


@router.post(
    "/me/tokens",
    status_code=201,
    openapi_extra=body_schema(TokenCreate),
    **answers(TokenIssued, 400, status=201),
)
def create_own_token(ctx: IdemCtx, body: Body) -> dict[str, Any]:
    # IdemCtx only so that an Idempotency-Key is seen and refused (400): a token is shown once.
    return users.create_own_token(ctx, body)


@router.get("/me/tokens", **answers(TokenList))
def list_own_tokens(ctx: UserCtx) -> dict[str, Any]:
    return users.list_own_tokens(ctx)


@router.delete("/me/tokens/{token_id}", status_code=204, **answers(None, 404))
def revoke_own_token(ctx: UserCtx, token_id: str) -> Response:
    users.revoke_own_token(ctx, token_id)
    return Response(status_code=204)


@router.get("/users", **answers(UserList, 403))
def list_users(ctx: UserCtx) -> dict[str, Any]:
    return users.list_users(ctx)


@router.post(
    "/users",
    status_code=201,
    openapi_extra=body_schema(UserCreate),
    **answers(UserCreated, 400, 403, 409, 422, status=201),
)
def create_user(ctx: IdemCtx, body: Body) -> dict[str, Any]:
    return users.create_user(ctx, body)


@router.patch(
    "/users/{name}",
    openapi_extra=body_schema(UserUpdate),
    **answers(UserOut, 400, 403, 404, 409, 422),
)
def update_user(ctx: UserCtx, name: str, body: Body) -> dict[str, Any]:
    return users.update_user(ctx, name, body)


@router.get("/users/{name}", **answers(UserDetail, 403, 404))
def get_user(ctx: UserCtx, name: str) -> dict[str, Any]:
    return users.get_user(ctx, name)


@router.get("/users/{name}/tokens", **answers(TokenList, 403, 404))
def list_user_tokens(ctx: UserCtx, name: str) -> dict[str, Any]:
    return users.list_user_tokens(ctx, name)


@router.post(
    "/users/{name}/tokens",
    status_code=201,
    openapi_extra=body_schema(TokenCreate),
    **answers(TokenIssued, 400, 403, 404, 409, status=201),
)
def create_token(ctx: IdemCtx, name: str, body: Body) -> dict[str, Any]:
    # IdemCtx only so that an Idempotency-Key is seen and refused (400): a token is shown once.
    return users.create_token(ctx, name, body)


@router.delete("/users/{name}/tokens/{token_id}", status_code=204, **answers(None, 403, 404))
def revoke_token(ctx: UserCtx, name: str, token_id: str) -> Response:
    users.revoke_token(ctx, name, token_id)
    return Response(status_code=204)


@router.post(
    "/users/{name}/invitation",
    status_code=201,
    **answers(InvitationIssued, 400, 403, 404, status=201),
)
def invite_user(ctx: UserCtx, request: Request, name: str) -> dict[str, Any]:
    """A one-time link, valid 72 hours, with which the user sets a (new) password."""
    return accounts.invite(ctx, name, public_base(request))


@router.post("/users/{name}/disable", **answers(UserState, 403, 404, 409))
def disable_user(ctx: UserCtx, name: str) -> dict[str, Any]:
    return users.disable_user(ctx, name)


@router.post("/users/{name}/enable", **answers(UserState, 403, 404))
def enable_user(ctx: UserCtx, name: str) -> dict[str, Any]:
    return users.enable_user(ctx, name)
