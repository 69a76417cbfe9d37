"""FastAPI dependencies: the runtime, the caller, the caller's language.

Every dependency is `async def`, even where it awaits nothing: FastAPI runs a plain `def`
dependency in a worker thread, and that hop (a thread wake-up each way) cost more than the
rest of a small request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from anxin.errors import unauthorized
from anxin.runtime import Runtime
from anxin.settings import Settings
from auth.permissions import Principal, load_principal, require_resident
from auth.tokens import AccessClaims, decode_access_token
from models import Resident

# Declares the bearer scheme in the OpenAPI document (Swagger's Authorize button); the
# 401 itself is ours, in the one error format.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="access_token from /api/v1/auth/wechat/login or /api/v1/auth/staff/login",
)


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.runtime.settings


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> AccessClaims:
    """The verified access token's claims, before anything is read: for a route that reads
    the caller's row in its own statement (then `noted(request, principal)`), which must
    refuse a deleted or blocked caller exactly as `get_principal` does."""
    # The bearer token read here rather than in a dependency of its own: FastAPI
    # re-inspects every dependency on every request, one level fewer is measurable.
    token = credentials.credentials.strip() if credentials is not None else ""
    if not token:
        raise unauthorized()
    claims = decode_access_token(request.app.state.runtime.settings, token)
    # For the 422 handler: a route that never ran has not read its caller yet.
    request.state.caller = claims
    return claims


async def get_resident_caller(
    request: Request, claims: Annotated[AccessClaims, Depends(get_caller)]
) -> AccessClaims:
    """`get_caller` for a residents-only route: anyone else is refused here, as
    `get_resident` refuses them (401 for a refused account, else 403)."""
    if claims.subject_type != "resident":
        require_resident(await principal_of(request, claims))
    return claims


async def principal_of(request: Request, claims: AccessClaims) -> Principal:
    return noted(request, await load_principal(claims.subject_type, claims.subject_id))


def noted(request: Request, principal: Principal) -> Principal:
    """The caller as read now (refused if they must be): errors and texts fall back to a
    resident's own language setting (api.errors.request_lang)."""
    request.state.principal_read = True
    if principal.resident is not None:
        request.state.language = principal.resident.language
    return principal


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    return await principal_of(request, await get_caller(request, credentials))


async def get_resident(principal: Annotated[Principal, Depends(get_principal)]) -> Resident:
    return require_resident(principal)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
CallerDep = Annotated[AccessClaims, Depends(get_caller)]
ResidentCallerDep = Annotated[AccessClaims, Depends(get_resident_caller)]
ResidentDep = Annotated[Resident, Depends(get_resident)]
