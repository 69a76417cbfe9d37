"""Visitor and delivery passes: residents create and cancel; staff list and revoke;
visitors open a share link; devices and staff fetch the community's public key."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import Field

from api.deps import PrincipalDep, ResidentDep, RuntimeDep
from api.passes import qr
from api.passes.share import HEADERS, render_share_page
from api.schemas import BodyId, Offset, PathId, Strict, When
from domain.passes import service
from models import Community, PassKind, PassState

router = APIRouter(prefix="/api/v1", tags=["passes"])
share_router = APIRouter(tags=["passes"])


class PassIn(Strict):
    kind: PassKind = PassKind.VISITOR
    room_id: BodyId | None = None
    visitor_name: str = Field("", max_length=32)
    visitor_phone: str = Field("", max_length=20, pattern=r"^(\+?\d{5,19})?$")
    # ISO 8601; without an offset, or a bare date (whole day), in the community's zone.
    valid_from: When | None = None
    valid_until: When | None = None
    max_uses: int | None = Field(None, ge=1, le=100)
    door_ids: list[BodyId] | None = Field(None, max_length=20)
    plate: str | None = Field(None, max_length=16)


@router.post("/passes", status_code=201, summary="创建通行证 · create a pass")
async def create(body: PassIn, resident: ResidentDep, runtime: RuntimeDep) -> dict[str, Any]:
    p, token = await service.create_pass(
        runtime, resident, service.PassRequest(**body.model_dump())
    )
    return service.pass_out(p, await service.community_tz(p.community_id), token)


@router.get("/passes", summary="我和家庭的通行证 · my and my households' passes")
async def mine(resident: ResidentDep) -> list[dict[str, Any]]:
    rows = await service.my_passes(resident.id)
    tzs = {cid: await service.community_tz(cid) for cid in {p.community_id for p in rows}}
    return [service.pass_out(p, tzs[p.community_id]) for p in rows]


@router.get("/passes/{pass_id}", summary="通行证详情 · one pass, with its token")
async def one(pass_id: PathId, resident: ResidentDep, runtime: RuntimeDep) -> dict[str, Any]:
    p = await service.my_pass(resident.id, pass_id)
    token = await service.token_for(runtime, p)
    return service.pass_out(p, await service.community_tz(p.community_id), token)


@router.get("/passes/{pass_id}/qr", summary="通行证二维码 · QR image (PNG or SVG)")
async def qr_image(
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


@router.post("/passes/{pass_id}/revoke", summary="作废通行证 · cancel a pass")
async def revoke(pass_id: PathId, resident: ResidentDep, runtime: RuntimeDep) -> dict[str, Any]:
    p = await service.resident_revoke(runtime, resident, pass_id)
    return service.pass_out(p, await service.community_tz(p.community_id))


@router.get(
    "/communities/{community_id}/pass-key",
    summary="通行证验签公钥 · the community's pass verification key (public)",
)
async def public_key(community_id: PathId, runtime: RuntimeDep) -> dict[str, Any]:
    key = await service.pass_service(runtime).keys.get(community_id)
    return {
        "community_id": community_id,
        "alg": "EdDSA",
        "public_key_pem": key.public_pem,  # signs new passes
        "kid": key.kid,
        # Every key a gate accepts now (after a rotation, older ones until their passes end).
        "keys": await service.key_set(runtime, community_id),
    }


@router.post(
    "/staff/communities/{community_id}/pass-key/rotate",
    summary="更换通行证签名密钥 · rotate the pass-signing key",
)
async def rotate_key(
    community_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    return {
        "community_id": community_id,
        **await service.rotate_key(runtime, principal, community_id),
    }


@router.get("/staff/communities/{community_id}/passes", summary="小区通行证 · passes (staff)")
async def staff_list(
    community_id: PathId,
    principal: PrincipalDep,
    state: PassState | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    rows = await service.community_passes(principal, community_id, state, limit, offset)
    tz = await service.community_tz(community_id)
    out = []
    for p in rows:
        item = service.pass_out(p, tz)
        item["visitor_phone"] = service.mask_phone(p.visitor_phone)
        del item["share_url"], item["qr_png_url"]
        out.append(item)
    return out


@router.post("/staff/passes/{pass_id}/revoke", summary="物业作废通行证 · revoke a pass (staff)")
async def staff_revoke(
    pass_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    p = await service.staff_revoke(runtime, principal, pass_id)
    out = service.pass_out(p, await service.community_tz(p.community_id))
    out["visitor_phone"] = service.mask_phone(p.visitor_phone)
    return out


@share_router.get("/p/{share_token}", response_class=HTMLResponse, include_in_schema=False)
async def share_page(share_token: str, runtime: RuntimeDep) -> HTMLResponse:
    p = await service.pass_by_share_token(share_token)
    community = await Community.get(id=p.community_id)
    token = await service.token_for(runtime, p)
    return HTMLResponse(render_share_page(p, community, token), headers=HEADERS)
