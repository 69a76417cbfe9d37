"""Visitor and delivery passes: residents create and cancel; staff list and revoke;
visitors open a share link; devices and staff fetch the community's public key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from anxin.timefmt import local_iso
from api.contract import (
    DEVICE,
    PAGE_DEFAULT,
    RESIDENT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    errors,
    keyset_page,
)
from api.deps import PrincipalDep, ResidentCallerDep, ResidentDep, RuntimeDep, noted
from api.idempotency import IdempotencyKey, fingerprint, run_once
from api.passes import qr
from api.passes.schemas import (
    AcceptedKey,
    PassIn,
    PassKey,
    PassKeyRotated,
    PassOut,
    PassWithToken,
    StaffPassOut,
)
from api.passes.share import HEADERS, render_share_page
from api.schemas import PathId
from auth.permissions import require_resident
from domain.passes import service
from models import Community, PassState, VisitorPass

resident_router = api_router("/api/v1", tags=[RESIDENT])
staff_router = api_router("/api/v1/staff", tags=[STAFF])
device_router = api_router("/api/v1", tags=[DEVICE, STAFF])
router = APIRouter()
share_router = APIRouter(include_in_schema=False)

_IMAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/svg+xml": {"schema": {"type": "string"}},
        },
        "description": "the QR code of the pass token",
    }
}


def _out(p: VisitorPass, tz: str) -> dict[str, Any]:
    return {**service.pass_out(p, tz), "timezone": tz}


async def pass_out(p: VisitorPass, token: str | None = None) -> PassOut | PassWithToken:
    tz = await service.community_tz(p.community_id)
    out = _out(p, tz)
    if token is None:
        return PassOut(**out)
    return PassWithToken(**out, token=token, token_chars=len(token))


def staff_pass_out(p: VisitorPass, tz: str) -> StaffPassOut:
    out = _out(p, tz)
    out["visitor_phone"] = service.mask_phone(p.visitor_phone)
    return StaffPassOut(**out)


@resident_router.post(
    "/passes",
    status_code=201,
    response_model=PassWithToken,
    responses=errors(403, 404, 429),
    summary="创建通行证 · create a pass (Idempotency-Key: a retry creates one pass)",
)
async def create_pass(
    request: Request,
    body: PassIn,
    caller: ResidentCallerDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> PassWithToken:
    # The caller's row, households and their communities' doors in one statement, read
    # before the key is claimed; the caller is refused as every route refuses it.
    principal, homes = await service.caller_homes(caller.subject_id)
    resident = require_resident(noted(request, principal))

    async def action() -> PassWithToken:
        p, token = await service.create_pass(
            runtime, resident, service.PassRequest(**body.model_dump()), homes
        )
        return await pass_out(p, token)  # type: ignore[return-value]

    return await run_once(
        scope=f"resident:{resident.id}",
        operation="createPass",
        key=idempotency_key,
        request_fingerprint=fingerprint(body.model_dump(mode="json")),
        action=action,
        status_code=201,
    )


@resident_router.get(
    "/passes",
    response_model=Page[PassOut],
    summary="我和家庭的通行证 · my and my households' passes, newest first",
)
async def list_my_passes(
    request: Request, caller: ResidentCallerDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[PassOut]:
    async def fetch(n: int, before: int | None) -> list[VisitorPass]:
        # The caller's row and the passes in one statement; the caller is refused as every
        # route refuses it.
        principal, rows = await service.caller_passes(caller.subject_id, limit=n, before=before)
        noted(request, principal)
        return rows

    page, nxt = await keyset_page(fetch, cursor, limit)
    tzs = {cid: await service.community_tz(cid) for cid in {p.community_id for p in page}}
    return Page(items=[PassOut(**_out(p, tzs[p.community_id])) for p in page], next=nxt)


@resident_router.get(
    "/passes/{pass_id}",
    response_model=PassWithToken,
    summary="通行证详情 · one pass, with its token",
)
async def get_pass(pass_id: PathId, resident: ResidentDep, runtime: RuntimeDep) -> PassWithToken:
    p = await service.my_pass(resident.id, pass_id)
    token = await service.token_for(runtime, p)
    return await pass_out(p, token)  # type: ignore[return-value]


@resident_router.get(
    "/passes/{pass_id}/qr",
    response_class=Response,
    responses=_IMAGE,
    summary="通行证二维码 · QR image (PNG or SVG)",
)
async def get_pass_qr(
    pass_id: PathId,
    resident: ResidentDep,
    runtime: RuntimeDep,
    format: Literal["png", "svg"] = "png",  # noqa: A002
) -> Response:
    p = await service.my_pass(resident.id, pass_id)
    token = await service.token_for(runtime, p)
    if format == "svg":
        return Response(qr.qr_svg(token), media_type="image/svg+xml")
    return Response(qr.qr_png(token), media_type="image/png")


@resident_router.post(
    "/passes/{pass_id}/revoke",
    response_model=PassOut,
    summary="作废通行证 · cancel a pass",
)
async def revoke_my_pass(pass_id: PathId, resident: ResidentDep, runtime: RuntimeDep) -> PassOut:
    p = await service.resident_revoke(runtime, resident, pass_id)
    return await pass_out(p)


@device_router.get(
    "/communities/{community_id}/pass-key",
    response_model=PassKey,
    summary="通行证验签公钥 · the community's pass verification key (public, no login)",
)
async def get_pass_key(community_id: PathId, runtime: RuntimeDep) -> PassKey:
    key = await service.pass_service(runtime).keys.get(community_id)
    tz = await service.community_tz(community_id)
    return PassKey(
        community_id=community_id,
        alg="EdDSA",
        public_key_pem=key.public_pem,
        kid=key.kid,
        # After a rotation the older keys too, until their passes end.
        keys=_accepted(await service.key_set(runtime, community_id), tz),
        timezone=tz,
    )


def _accepted(keys: list[dict[str, Any]], tz: str) -> list[AcceptedKey]:
    """The key set as people and the API read it (the device config carries epoch ms)."""
    return [
        AcceptedKey(
            kid=k["kid"],
            public_key_pem=k["public_key_pem"],
            until=local_iso(datetime.fromtimestamp(k["until"] / 1000, UTC), tz)
            if k["until"] is not None
            else None,
        )
        for k in keys
    ]


@staff_router.post(
    "/communities/{community_id}/pass-key/rotate",
    response_model=PassKeyRotated,
    summary="更换通行证签名密钥 · rotate the pass-signing key",
)
async def rotate_pass_key(
    community_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> PassKeyRotated:
    rotated = await service.rotate_key(runtime, principal, community_id)
    tz = await service.community_tz(community_id)
    return PassKeyRotated(
        community_id=community_id,
        kid=rotated["kid"],
        keys=_accepted(rotated["keys"], tz),
        timezone=tz,
    )


@staff_router.get(
    "/communities/{community_id}/passes",
    response_model=Page[StaffPassOut],
    summary="小区通行证 · passes (staff), newest first",
)
async def list_community_passes(
    community_id: PathId,
    principal: PrincipalDep,
    state: PassState | None = None,
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[StaffPassOut]:
    page, nxt = await keyset_page(
        lambda n, before: service.community_passes(
            principal, community_id, state=state, limit=n, before=before
        ),
        cursor,
        limit,
    )
    tz = await service.community_tz(community_id)
    return Page(items=[staff_pass_out(p, tz) for p in page], next=nxt)


@staff_router.post(
    "/passes/{pass_id}/revoke",
    response_model=StaffPassOut,
    summary="物业作废通行证 · revoke a pass (staff)",
)
async def staff_revoke_pass(
    pass_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> StaffPassOut:
    p = await service.staff_revoke(runtime, principal, pass_id)
    return staff_pass_out(p, await service.community_tz(p.community_id))


@share_router.get("/p/{share_token}", response_class=HTMLResponse)
async def share_page(share_token: str, runtime: RuntimeDep) -> HTMLResponse:
    p = await service.pass_by_share_token(share_token)
    community = await Community.get(id=p.community_id)
    token = await service.token_for(runtime, p)
    return HTMLResponse(render_share_page(p, community, token), headers=HEADERS)


for _r in (resident_router, staff_router, device_router):
    router.include_router(_r)
