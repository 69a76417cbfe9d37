"""Communities and staff accounts: operators set a city up; admins manage their staff."""

from __future__ import annotations

from fastapi import Query

from api.accounts.schemas import (
    CommunityHealth,
    CommunityIn,
    CommunityOut,
    NewStaffOut,
    PasswordResetOut,
    RolesIn,
    StaffIn,
    StaffOut,
)
from api.contract import (
    OPERATOR,
    PAGE_DEFAULT,
    STAFF,
    Cursor,
    Limit,
    Page,
    api_router,
    errors,
    page_list,
)
from api.deps import PrincipalDep, RuntimeDep
from api.schemas import INT32_MAX, PathId
from domain.dashboard import service as dashboard
from domain.staff import service
from models import Community, StaffAccount

router = api_router("/api/v1", tags=[STAFF])


def community_out(c: Community) -> CommunityOut:
    return CommunityOut(
        id=c.id,
        city=c.city.name if hasattr(c.city, "name") else None,
        name=c.name,
        name_en=c.name_en,
        address=c.address,
        timezone=c.timezone,
    )


def staff_out(s: StaffAccount) -> StaffOut:
    roles: dict[str, list[str]] = {}
    for r in getattr(s, "roles", []) or []:
        roles.setdefault(str(r.community_id), []).append(r.role.value)
    return StaffOut(
        id=s.id,
        username=s.username,
        display_name=s.display_name,
        is_active=s.is_active,
        is_operator=s.is_operator,
        roles={c: sorted(v) for c, v in roles.items()},
    )


@router.post(
    "/operator/communities",
    status_code=201,
    response_model=CommunityOut,
    responses=errors(409),
    summary="运营人员创建小区 · create a community",
    tags=[OPERATOR],
)
async def create_community(body: CommunityIn, principal: PrincipalDep) -> CommunityOut:
    c = await service.create_community(principal, **body.model_dump())
    await c.fetch_related("city")
    return community_out(c)


@router.get(
    "/operator/communities",
    response_model=Page[CommunityOut],
    summary="全部小区 · every community (operators)",
    tags=[OPERATOR],
)
async def list_communities(
    principal: PrincipalDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[CommunityOut]:
    rows, nxt = page_list(await service.list_communities(principal), cursor, limit, lambda c: c.id)
    return Page(items=[community_out(c) for c in rows], next=nxt)


@router.get(
    "/operator/overview",
    response_model=Page[CommunityHealth],
    summary="运营总览 · health of every community",
    tags=[OPERATOR],
)
async def overview(
    principal: PrincipalDep, cursor: Cursor = None, limit: Limit = PAGE_DEFAULT
) -> Page[CommunityHealth]:
    rows, nxt = page_list(
        await dashboard.operator_overview(principal), cursor, limit, lambda row: row[0].id
    )
    items = [
        CommunityHealth(
            community=community_out(c), **{k: v for k, v in vars(s).items() if k != "extra"}
        )
        for c, s in rows
    ]
    return Page(items=items, next=nxt)


@router.post(
    "/staff/accounts",
    status_code=201,
    response_model=NewStaffOut,
    responses=errors(404, 409),
    summary="创建工作人员账号 · create a staff account",
)
async def create_staff(body: StaffIn, principal: PrincipalDep) -> NewStaffOut:
    created = await service.create_staff(principal, **body.model_dump())
    await created.staff.fetch_related("roles")
    # The password is in this answer only (generated when not given): hand it over.
    return NewStaffOut(**staff_out(created.staff).model_dump(), password=created.password)


@router.get(
    "/staff/accounts",
    response_model=Page[StaffOut],
    responses=errors(404),
    summary="工作人员账号 · staff accounts the caller manages",
)
async def list_staff(
    principal: PrincipalDep,
    community_id: int | None = Query(None, gt=0, le=INT32_MAX),
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
) -> Page[StaffOut]:
    rows, nxt = page_list(
        await service.list_staff(principal, community_id=community_id),
        cursor,
        limit,
        lambda s: s.id,
    )
    return Page(items=[staff_out(s) for s in rows], next=nxt)


@router.put(
    "/staff/accounts/{staff_id}/roles",
    response_model=StaffOut,
    summary="设置岗位 · set roles in a community",
)
async def set_roles(staff_id: PathId, body: RolesIn, principal: PrincipalDep) -> StaffOut:
    staff = await service.set_roles(principal, staff_id, body.community_id, body.roles)
    await staff.fetch_related("roles")
    return staff_out(staff)


@router.post(
    "/staff/accounts/{staff_id}/disable",
    response_model=StaffOut,
    summary="停用账号 · disable (logs out)",
)
async def disable(staff_id: PathId, principal: PrincipalDep, runtime: RuntimeDep) -> StaffOut:
    staff = await service.set_active(runtime.kv, principal, staff_id, False)
    await staff.fetch_related("roles")
    return staff_out(staff)


@router.post(
    "/staff/accounts/{staff_id}/enable", response_model=StaffOut, summary="启用账号 · enable"
)
async def enable(staff_id: PathId, principal: PrincipalDep, runtime: RuntimeDep) -> StaffOut:
    staff = await service.set_active(runtime.kv, principal, staff_id, True)
    await staff.fetch_related("roles")
    return staff_out(staff)


@router.post(
    "/staff/accounts/{staff_id}/reset-password",
    response_model=PasswordResetOut,
    summary="重置密码 · a new temporary password (shown once; logs out everywhere)",
)
async def reset_password(
    staff_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> PasswordResetOut:
    reset = await service.reset_password(runtime.kv, principal, staff_id)
    return PasswordResetOut(
        id=reset.staff.id, username=reset.staff.username, password=reset.password
    )
