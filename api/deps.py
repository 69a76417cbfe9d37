"""FastAPI dependencies: the runtime, the caller, the caller's language.

Every dependency is `async def`, even where it awaits nothing: FastAPI runs a plain `def`
dependency in a worker thread, and that hop (a thread wake-up each way) cost more than the
rest of a small request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from anxin.errors import unauthorized
from anxin.runtime import Runtime
from anxin.settings import Settings
from auth.permissions import Principal, load_principal, require_resident
from auth.tokens import AccessClaims, decode_access_token
from models import Resident


class Bearer(HTTPBearer):
    """The bearer scheme, declared in the OpenAPI document (Swagger's Authorize button),
    that also reads the route's caller: `read(request, claims)` of the verified token.
    One dependency level where a scheme and the readers on top of it made two or three:
    FastAPI solves every level anew on each request (about 10 µs a level). The 401 is
    ours, in the one error format."""

    def __init__(self, read: Callable[[Request, AccessClaims], Awaitable[Any]]) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="bearer",
            bearerFormat="JWT",
            description=("access_token from /api/v1/auth/wechat/login or /api/v1/auth/staff/login"),
        )
        self.read = read

    async def __call__(self, request: Request) -> Any:  # type: ignore[override]
        credentials = await super().__call__(request)
        token = credentials.credentials.strip() if credentials is not None else ""
        if not token:
            raise unauthorized()
        claims = decode_access_token(request.app.state.runtime.settings, token)
        # For the 422 handler: a route that never ran has not read its caller yet.
        request.state.caller = claims
        return await self.read(request, claims)


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.runtime.settings


async def _claims(request: Request, claims: AccessClaims) -> AccessClaims:
    return claims


async def _resident_claims(request: Request, claims: AccessClaims) -> AccessClaims:
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


async def _resident(request: Request, claims: AccessClaims) -> Resident:
    return require_resident(await principal_of(request, claims))


get_caller = Bearer(_claims)
"""The verified access token's claims, before anything is read: for a route that reads the
caller's row in its own statement (then `noted(request, principal)`), which must refuse a
deleted or blocked caller exactly as `get_principal` does."""
get_resident_caller = Bearer(_resident_claims)
"""`get_caller` for a residents-only route: anyone else is refused here, as `get_resident`
refuses them (401 for a refused account, else 403)."""
get_principal = Bearer(principal_of)
get_resident = Bearer(_resident)

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
CallerDep = Annotated[AccessClaims, Depends(get_caller)]
ResidentCallerDep = Annotated[AccessClaims, Depends(get_resident_caller)]
ResidentDep = Annotated[Resident, Depends(get_resident)]
