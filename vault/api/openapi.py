"""What ``/openapi.json`` says beyond what FastAPI infers: errors, security and the rest.

Routes declare only what is their own, through one function: ``answers(model, *statuses)``
names the success schema and the error statuses the operation's service really raises.  What
every operation of a kind shares is added here, from the operation's dependencies rather than
by hand, so it cannot be forgotten on a new route:

- every operation that resolves the caller (``optional_ctx``, recognised by the
  ``X-Kinko-Device`` header that dependency declares) can answer 401 (a bad token is
  refused even where none is needed), and, being audited, 503 when the audit log or a store
  cannot be written or read in time, and 500;
- operations that require a caller (``signed_in_ctx``) carry the bearer security requirement
  (FastAPI adds it from the ``HTTPBearer`` dependency); the member content routes, which
  anonymous callers may use for disclosed documents, declare it as optional (``OPTIONAL_AUTH``);
  the public routes and ``/healthz`` declare none;
- FastAPI's own 422 "validation error" is replaced: parameters are read as text and checked by
  the services (400 with a code), so only operations that declare 422 (an ``Idempotency-Key``
  reused) keep it, with the error envelope like every other error.

Headers are declared where they are read, as ``Header`` parameters (``vault.api.deps``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

BEARER_SCHEME = "bearerAuth"
DEVICE_HEADER = "X-Kinko-Device"
# Bearer auth or none: the member content routes also serve disclosed documents to anyone.
OPTIONAL_AUTH: dict[str, Any] = {"security": [{BEARER_SCHEME: []}, {}]}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `purpose_required`.")
    message: str = Field(description="A sentence for people; never names what is hidden.")


class ErrorBody(BaseModel):
    """Every error answer of the API (SPEC §7)."""

    error: ErrorDetail


ERROR_MEANINGS: dict[int, str] = {
    400: "Malformed or missing input; `error.code` says which.",
    401: "No token where one is needed, or an unknown, expired or revoked one "
    "(audited as `auth.fail`).",
    403: "Signed in, but the caller's roles do not allow this now.",
    404: "Does not exist, or the caller may not know that it does (the same answer).",
    408: "The upload stopped arriving.",
    409: "The current state does not allow it.",
    410: "Gone for good: the case was crypto-shredded, or a disclosure link expired, was "
    "revoked, was used up, or the case reached the review request.",
    429: "Too many attempts from this client address; try again later.",
    412: "`If-Match` does not name the latest version.",
    422: "The `Idempotency-Key` was used before for a different request.",
    500: "Internal error, or stored data failed authentication; nothing was served.",
    503: "The audit log or a store could not be written or read in time; nothing was done.",
}

# Added to every operation that resolves the caller (see the module docstring).
_CALLER_STATUSES = (401, 500, 503)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": ERROR_MEANINGS[s]} for s in statuses}


def answers(
    model: type[BaseModel] | None,
    *statuses: int,
    status: int = 200,
    description: str = "Success.",
    extra: dict[int | str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Route decorator arguments: the success schema and the operation's own error statuses.

    The answer is documented, not re-validated on the way out (``response_model=None``): the
    services build it, and the tests check real answers against the schema.
    """
    responses = errors(*statuses)
    if model is not None:
        responses[status] = {"model": model, "description": description}
    responses.update(extra or {})
    return {"response_model": None, "responses": responses}


def _error_ref(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` build the schema described above (once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for operations in schema["paths"].values():
            for op in operations.values():
                _complete(op)
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(op: dict[str, Any]) -> None:
    responses = op.setdefault("responses", {})
    auto_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
    if "HTTPValidationError" in str(auto_422.get("schema", {})):
        responses.pop("422")
    # X-Kinko-Device is a parameter of optional_ctx, the dependency that resolves (and audits)
    # the caller: its presence marks exactly the operations that do.
    if any(p.get("name") == DEVICE_HEADER for p in op.get("parameters", [])):
        for status in _CALLER_STATUSES:
            responses.setdefault(str(status), _error_ref(ERROR_MEANINGS[status]))
    for status, response in responses.items():
        if status.startswith(("4", "5")):
            # Errors are JSON whatever the success answer is (raw bytes, text, CSV).
            response["content"] = _error_ref("")["content"]
