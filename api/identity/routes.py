"""Login, token refresh, logout, phone binding, language, and who am I."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field

from api.contract import RESIDENT, STAFF, api_router, errors
from api.deps import PrincipalDep, ResidentDep, RuntimeDep
from api.identity.schemas import (
    AccountDeleted,
    LanguageIn,
    Me,
    PhoneIn,
    PhoneOut,
    RefreshIn,
    ResidentMe,
    StaffLoginIn,
    StaffMe,
    WechatLoginIn,
)
from api.schemas import Ok, TokenOut
from auth.permissions import Principal
from domain.identity import deletion, service
from models import Resident

resident_router = api_router("/api/v1", tags=[RESIDENT])
staff_router = api_router("/api/v1", tags=[STAFF])
shared_router = api_router("/api/v1", tags=[RESIDENT, STAFF])
router = APIRouter()

_WECHAT_ERRORS = errors(401, 403, 502, 503)  # code refused; blocked; WeChat down or odd


def _tokens(pair: Any) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


def resident_me(r: Resident) -> ResidentMe:
    return ResidentMe(id=r.id, name=r.name, phone=r.phone, language=_lang(r.language))


def _lang(value: str) -> Any:
    return "en" if value == "en" else "zh"


@resident_router.post(
    "/auth/wechat/login",
    response_model=TokenOut,
    responses=_WECHAT_ERRORS,
    summary="Mini-program login (wx.login code)",
)
async def wechat_login(body: WechatLoginIn, runtime: RuntimeDep, request: Request) -> TokenOut:
    client_ip = request.client.host if request.client else ""
    _, pair = await service.login_resident(runtime, body.js_code, client_ip)
    return _tokens(pair)


@staff_router.post(
    "/auth/staff/login",
    response_model=TokenOut,
    responses=errors(401, 403, 429),
    summary="Staff password login",
)
async def staff_login(body: StaffLoginIn, runtime: RuntimeDep, request: Request) -> TokenOut:
    client_ip = request.client.host if request.client else ""
    _, pair = await service.login_staff(runtime, body.username, body.password, client_ip)
    return _tokens(pair)


@shared_router.post(
    "/auth/refresh",
    response_model=TokenOut,
    responses=errors(401, 403),
    summary="Rotate the refresh token",
)
async def refresh_tokens(body: RefreshIn, runtime: RuntimeDep) -> TokenOut:
    return _tokens(await service.refresh(runtime, body.refresh_token))


@shared_router.post("/auth/logout", response_model=Ok, summary="Revoke this login's refresh tokens")
async def logout(body: RefreshIn) -> Ok:
    await service.logout(body.refresh_token)
    return Ok()


@resident_router.post(
    "/me/phone",
    response_model=PhoneOut,
    responses=_WECHAT_ERRORS,
    summary="Bind the phone number from WeChat's getPhoneNumber button",
)
async def bind_phone(body: PhoneIn, resident: ResidentDep, runtime: RuntimeDep) -> PhoneOut:
    resident = await service.bind_phone(runtime, resident, body.code)
    return PhoneOut(phone=resident.phone)


@resident_router.put(
    "/me/language",
    response_model=ResidentMe,
    summary="My language: texts, errors (without Accept-Language) and notifications",
)
async def set_language(body: LanguageIn, resident: ResidentDep) -> ResidentMe:
    resident.language = body.language
    await resident.save(update_fields=["language"])
    return resident_me(resident)


MeOut = Annotated[Me, Field(discriminator="kind")]


@shared_router.get("/me", response_model=MeOut, summary="Who am I")
async def me(principal: PrincipalDep) -> ResidentMe | StaffMe:
    return principal_me(principal)


def principal_me(principal: Principal) -> ResidentMe | StaffMe:
    if principal.resident is not None:
        return resident_me(principal.resident)
    assert principal.staff is not None
    return StaffMe(
        id=principal.id,
        username=principal.staff.username,
        display_name=principal.staff.display_name,
        is_operator=principal.is_operator,
        roles={str(c): sorted(r) for c, r in principal.roles.items()},
    )


@resident_router.delete(
    "/me",
    response_model=AccountDeleted,
    summary="注销账号 · delete my account: every household, pass, card, vehicle and face ends",
)
async def delete_my_account(resident: ResidentDep, runtime: RuntimeDep) -> AccountDeleted:
    departures = await deletion.delete_account(runtime, resident)
    return AccountDeleted(communities=sorted({d.community_id for d in departures}))


for _r in (resident_router, staff_router, shared_router):
    router.include_router(_r)
