"""FastAPI dependencies: the runtime, the caller, the caller's language."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from anxin.errors import unauthorized
from anxin.runtime import Runtime
from anxin.settings import Settings
from auth.permissions import Principal, load_principal, require_resident
from auth.tokens import decode_access_token
from models import Resident


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.runtime.settings


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized()
    return token.strip()


async def get_principal(
    request: Request, token: Annotated[str, Depends(bearer_token)]
) -> Principal:
    claims = decode_access_token(request.app.state.runtime.settings, token)
    return await load_principal(claims.subject_type, claims.subject_id)


async def get_resident(principal: Annotated[Principal, Depends(get_principal)]) -> Resident:
    return require_resident(principal)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ResidentDep = Annotated[Resident, Depends(get_resident)]
