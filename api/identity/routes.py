"""Login, token refresh, logout, phone binding, and who am I."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from api.deps import PrincipalDep, ResidentDep, RuntimeDep
from api.schemas import Ok, Strict, TokenOut
from domain.identity import deletion, service

router = APIRouter(prefix="/api/v1", tags=["identity"])


class WechatLoginIn(Strict):
    js_code: str = Field(min_length=1, max_length=128)


class StaffLoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=128)


class PhoneIn(Strict):
    code: str = Field(min_length=1, max_length=128)


def _tokens(pair: Any) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post(
    "/auth/wechat/login", response_model=TokenOut, summary="Mini-program login (wx.login code)"
)
async def wechat_login(body: WechatLoginIn, runtime: RuntimeDep, request: Request) -> TokenOut:
    client_ip = request.client.host if request.client else ""
    _, pair = await service.login_resident(runtime, body.js_code, client_ip)
    return _tokens(pair)


@router.post("/auth/staff/login", response_model=TokenOut, summary="Staff password login")
async def staff_login(body: StaffLoginIn, runtime: RuntimeDep, request: Request) -> TokenOut:
    client_ip = request.client.host if request.client else ""
    _, pair = await service.login_staff(runtime, body.username, body.password, client_ip)
    return _tokens(pair)


@router.post("/auth/refresh", response_model=TokenOut, summary="Rotate the refresh token")
async def refresh(body: RefreshIn, runtime: RuntimeDep) -> TokenOut:
    return _tokens(await service.refresh(runtime, body.refresh_token))


@router.post("/auth/logout", response_model=Ok, summary="Revoke this login's refresh tokens")
async def logout(body: RefreshIn) -> Ok:
    await service.logout(body.refresh_token)
    return Ok()


@router.post("/me/phone", summary="Bind the phone number from WeChat's getPhoneNumber button")
async def bind_phone(body: PhoneIn, resident: ResidentDep, runtime: RuntimeDep) -> dict[str, Any]:
    resident = await service.bind_phone(runtime, resident, body.code)
    return {"phone": resident.phone}


@router.get("/me", summary="Who am I")
async def me(principal: PrincipalDep) -> dict[str, Any]:
    if principal.resident is not None:
        r = principal.resident
        return {
            "kind": "resident",
            "id": r.id,
            "name": r.name,
            "phone": r.phone,
            "language": r.language,
        }
    assert principal.staff is not None
    return {
        "kind": "staff",
        "id": principal.id,
        "username": principal.staff.username,
        "display_name": principal.staff.display_name,
        "is_operator": principal.is_operator,
        "roles": {str(c): sorted(r) for c, r in principal.roles.items()},
    }


@router.delete(
    "/me",
    summary="注销账号 · delete my account: every household, pass, card, vehicle and face ends",
)
async def delete_me(resident: ResidentDep, runtime: RuntimeDep) -> dict[str, Any]:
    departures = await deletion.delete_account(runtime, resident)
    return {"deleted": True, "communities": sorted({d.community_id for d in departures})}
