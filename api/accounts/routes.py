"""Communities and staff accounts: operators set a city up; admins manage their staff."""

from __future__ import annotations

from typing import Any

from fastapi import Query
from pydantic import Field

from api.contract import OPERATOR, STAFF, api_router
from api.deps import PrincipalDep, RuntimeDep
from api.schemas import BodyId, PathId, Strict
from domain.dashboard import service as dashboard
from domain.staff import service
from models import Community, StaffAccount, StaffRoleName

router = api_router("/api/v1", tags=[STAFF])


class CommunityIn(Strict):
    city: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    name_en: str = Field("", max_length=64)
    address: str = Field("", max_length=200)
    timezone: str = Field("Asia/Shanghai", max_length=64)


class StaffIn(Strict):
    username: str = Field(min_length=3, max_length=64)
    display_name: str = Field("", max_length=64)
    community_id: BodyId
    roles: list[StaffRoleName] = Field(min_length=1, max_length=4)
    password: str | None = Field(None, min_length=10, max_length=256)


class RolesIn(Strict):
    community_id: BodyId
    roles: list[StaffRoleName] = Field(max_length=4)


def community_out(c: Community) -> dict[str, Any]:
    return {
        "id": c.id,
        "city": c.city.name if hasattr(c.city, "name") else None,
        "name": c.name,
        "name_en": c.name_en,
        "address": c.address,
        "timezone": c.timezone,
    }


def staff_out(s: StaffAccount) -> dict[str, Any]:
    roles: dict[str, list[str]] = {}
    for r in getattr(s, "roles", []) or []:
        roles.setdefault(str(r.community_id), []).append(r.role.value)
    return {
        "id": s.id,
        "username": s.username,
        "display_name": s.display_name,
        "is_active": s.is_active,
        "is_operator": s.is_operator,
        "roles": {c: sorted(v) for c, v in roles.items()},
    }


@router.post(
    "/operator/communities",
    status_code=201,
    summary="运营人员创建小区 · create a community",
    tags=[OPERATOR],
)
async def create_community(body: CommunityIn, principal: PrincipalDep) -> dict[str, Any]:
    c = await service.create_community(principal, **body.model_dump())
    await c.fetch_related("city")
    return community_out(c)


@router.get(
    "/operator/communities", summary="全部小区 · every community (operators)", tags=[OPERATOR]
)
async def list_communities(principal: PrincipalDep) -> list[dict[str, Any]]:
    return [community_out(c) for c in await service.list_communities(principal)]


@router.get("/operator/overview", summary="运营总览 · health of every community", tags=[OPERATOR])
async def overview(principal: PrincipalDep) -> list[dict[str, Any]]:
    rows = await dashboard.operator_overview(principal)
    return [
        {"community": community_out(c), **{k: v for k, v in vars(s).items() if k != "extra"}}
        for c, s in rows
    ]


@router.post(
    "/staff/accounts", status_code=201, summary="创建工作人员账号 · create a staff account"
)
async def create_staff(body: StaffIn, principal: PrincipalDep) -> dict[str, Any]:
    created = await service.create_staff(principal, **body.model_dump())
    await created.staff.fetch_related("roles")
    # The password is in this answer only (generated when not given): hand it over.
    return {**staff_out(created.staff), "password": created.password}


@router.get("/staff/accounts", summary="工作人员账号 · staff accounts the caller manages")
async def list_staff(
    principal: PrincipalDep, community_id: int | None = Query(None, gt=0, le=2**31 - 1)
) -> list[dict[str, Any]]:
    return [staff_out(s) for s in await service.list_staff(principal, community_id)]


@router.put("/staff/accounts/{staff_id}/roles", summary="设置岗位 · set roles in a community")
async def set_roles(staff_id: PathId, body: RolesIn, principal: PrincipalDep) -> dict[str, Any]:
    staff = await service.set_roles(principal, staff_id, body.community_id, body.roles)
    await staff.fetch_related("roles")
    return staff_out(staff)


@router.post("/staff/accounts/{staff_id}/disable", summary="停用账号 · disable (logs out)")
async def disable(staff_id: PathId, principal: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    staff = await service.set_active(runtime.kv, principal, staff_id, False)
    await staff.fetch_related("roles")
    return staff_out(staff)


@router.post("/staff/accounts/{staff_id}/enable", summary="启用账号 · enable")
async def enable(staff_id: PathId, principal: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    staff = await service.set_active(runtime.kv, principal, staff_id, True)
    await staff.fetch_related("roles")
    return staff_out(staff)


@router.post(
    "/staff/accounts/{staff_id}/reset-password",
    summary="重置密码 · a new temporary password (shown once; logs out everywhere)",
)
async def reset_password(
    staff_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> dict[str, Any]:
    reset = await service.reset_password(runtime.kv, principal, staff_id)
    return {"id": reset.staff.id, "username": reset.staff.username, "password": reset.password}
