from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from vault.api.deps import Body, UserCtx, body_schema
from vault.services import users
from vault.services.schemas import TokenCreate, UserCreate

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.get("/me")
def me(ctx: UserCtx) -> dict[str, Any]:
    return users.me(ctx)


@router.get("/me/notifications")
def my_notifications(ctx: UserCtx) -> dict[str, Any]:
    return users.list_notifications(ctx)


@router.post("/me/tokens", status_code=201, openapi_extra=body_schema(TokenCreate))
def create_own_token(ctx: UserCtx, body: Body) -> dict[str, Any]:
    return users.create_own_token(ctx, body)


@router.get("/me/tokens")
def list_own_tokens(ctx: UserCtx) -> dict[str, Any]:
    return users.list_own_tokens(ctx)


@router.delete("/me/tokens/{token_id}", status_code=204)
def revoke_own_token(ctx: UserCtx, token_id: str) -> Response:
    users.revoke_own_token(ctx, token_id)
    return Response(status_code=204)


@router.get("/users")
def list_users(ctx: UserCtx) -> dict[str, Any]:
    return users.list_users(ctx)


@router.post("/users", status_code=201, openapi_extra=body_schema(UserCreate))
def create_user(ctx: UserCtx, body: Body) -> dict[str, Any]:
    return users.create_user(ctx, body)


@router.get("/users/{name}")
def get_user(ctx: UserCtx, name: str) -> dict[str, Any]:
    return users.get_user(ctx, name)


@router.get("/users/{name}/tokens")
def list_user_tokens(ctx: UserCtx, name: str) -> dict[str, Any]:
    return users.list_user_tokens(ctx, name)


@router.post("/users/{name}/tokens", status_code=201, openapi_extra=body_schema(TokenCreate))
def create_token(ctx: UserCtx, name: str, body: Body) -> dict[str, Any]:
    return users.create_token(ctx, name, body)


@router.delete("/users/{name}/tokens/{token_id}", status_code=204)
def revoke_token(ctx: UserCtx, name: str, token_id: str) -> Response:
    users.revoke_token(ctx, name, token_id)
    return Response(status_code=204)


@router.post("/users/{name}/disable")
def disable_user(ctx: UserCtx, name: str) -> dict[str, Any]:
    return users.disable_user(ctx, name)


@router.post("/users/{name}/enable")
def enable_user(ctx: UserCtx, name: str) -> dict[str, Any]:
    return users.enable_user(ctx, name)
