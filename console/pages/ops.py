"""Operator pages (all communities at once) and staff account management, which a
community's admin also uses for their own community."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from auth.permissions import Action
from console import i18n, labels, nav
from console.web import CommunityCtx, ConsoleRoute, Ctx, OperatorCtx, StaffCtx, done, render
from domain.dashboard import service as dashboard
from domain.staff import service as staffing
from models import Community, StaffRoleName

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

nav.register(nav.NavItem("ops", "nav.ops", "/console/ops/", operator=True, order=1))
nav.register(
    nav.NavItem(
        "ops-communities", "nav.ops_communities", "/console/ops/communities", operator=True, order=2
    )
)
nav.register(
    nav.NavItem("ops-staff", "nav.ops_staff", "/console/ops/staff", operator=True, order=3)
)
nav.register(
    nav.NavItem(
        "staff", "nav.staff", "/console/c/{cid}/staff", (Action.COMMUNITY_MANAGE,), order=80
    )
)

i18n.add(
    {
        "nav.ops": ("运营总览", "Overview"),
        "nav.ops_communities": ("小区管理", "Communities"),
        "nav.ops_staff": ("账号管理", "Staff accounts"),
        "nav.staff": ("工作人员", "Staff"),
        "ops.title": ("全市小区运营总览", "All communities at a glance"),
        "ops.community": ("小区", "Community"),
        "ops.health": ("状况", "Health"),
        "ops.healthy": ("正常", "healthy"),
        "ops.attention": ("需关注", "needs attention"),
        "ops.totals": ("合计", "Total"),
        "ops.offline": ("离线设备", "Devices offline"),
        "ops.pending": ("待审核", "Pending"),
        "ops.faces": ("人脸", "Faces"),
        "communities.title": ("小区", "Communities"),
        "communities.new": ("新建小区", "New community"),
        "communities.city": ("城市", "City"),
        "communities.name": ("小区名称", "Name"),
        "communities.name_en": ("英文名称", "English name"),
        "communities.address": ("地址", "Address"),
        "communities.timezone": ("时区", "Time zone"),
        "communities.create": ("创建", "Create"),
        "done.community_created": ("小区已创建", "Community created"),
        "staff.title": ("工作人员账号", "Staff accounts"),
        "staff.new": ("新建账号", "New account"),
        "staff.username": ("用户名", "Username"),
        "staff.display_name": ("姓名", "Name"),
        "staff.community": ("所属小区", "Community"),
        "staff.roles": ("岗位", "Roles"),
        "staff.active": ("启用", "Active"),
        "staff.disabled": ("已停用", "Disabled"),
        "staff.create": ("创建账号", "Create account"),
        "staff.set_roles": ("保存岗位", "Save roles"),
        "staff.disable": ("停用", "Disable"),
        "staff.enable": ("启用", "Enable"),
        "staff.reset": ("重置密码", "Reset password"),
        "staff.reset_confirm": (
            "重置后原密码立即失效并退出所有登录。确定？",
            "The old password stops working and every sign-in ends. Go on?",
        ),
        "staff.password_once": (
            "初始密码（只显示这一次，请当面交给本人）",
            "Password (shown once: hand it over in person)",
        ),
        "staff.operator": ("运营人员", "operator"),
        "role.admin": ("管理员", "admin"),
        "role.approver": ("审核员", "approver"),
        "role.guard": ("门岗", "guard"),
        "role.security": ("治安保卫", "security"),
        "done.staff_saved": ("账号已更新", "Account updated"),
    }
)


@router.get("/ops/")
async def overview(ctx: OperatorCtx) -> Response:
    rows = await dashboard.operator_overview(ctx.principal)
    totals = {
        key: sum(getattr(s, key) or 0 for _, s in rows)
        for key in (
            "entries_today",
            "refused_today",
            "open_alarms",
            "devices_offline",
            "faces_held",
            "pending_memberships",
        )
    }
    return await render(ctx, "ops_overview.html", active="ops", rows=rows, totals=totals)


@router.get("/ops/communities")
async def communities(ctx: OperatorCtx) -> Response:
    rows = await staffing.list_communities(ctx.principal)
    return await render(ctx, "ops_communities.html", active="ops-communities", rows=rows)


@router.post("/ops/communities")
async def create_community(
    ctx: OperatorCtx,
    city: Annotated[str, Form(min_length=1, max_length=64)],
    name: Annotated[str, Form(min_length=1, max_length=64)],
    name_en: Annotated[str, Form(max_length=64)] = "",
    address: Annotated[str, Form(max_length=200)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "Asia/Shanghai",
) -> Response:
    await staffing.create_community(
        ctx.principal, city=city, name=name, name_en=name_en, address=address, timezone=timezone
    )
    return await done(ctx, "/console/ops/communities", "done.community_created")


async def _staff_page(ctx: Ctx, community_id: int | None, active: str, base: str) -> Response:
    accounts = await staffing.list_staff(ctx.principal, community_id=community_id)
    if community_id is None:
        choices = await Community.all().order_by("id")
    else:
        choices = await Community.filter(id=community_id)
    return await render(
        ctx,
        "staff.html",
        active=active,
        accounts=accounts,
        choices=choices,
        names={c.id: c.name for c in await Community.all()},
        roles=list(StaffRoleName),
        labels=labels,
        base=base,
    )


@router.get("/ops/staff")
async def ops_staff(ctx: OperatorCtx) -> Response:
    return await _staff_page(ctx, None, "ops-staff", "/console/ops/staff")


@router.get("/c/{cid}/staff")
async def community_staff(ctx: CommunityCtx) -> Response:
    return await _staff_page(ctx, ctx.cid, "staff", f"/console/c/{ctx.cid}/staff")


def _roles(values: list[str]) -> list[StaffRoleName]:
    return [StaffRoleName(v) for v in values if v in StaffRoleName._value2member_map_]


async def _create(
    ctx: Ctx, base: str, username: str, display_name: str, community_id: int, roles: list[str]
) -> Response:
    created = await staffing.create_staff(
        ctx.principal,
        username=username,
        display_name=display_name,
        community_id=community_id,
        roles=_roles(roles),
    )
    return await render(
        ctx,
        "staff_password.html",
        active="staff",
        staff=created.staff,
        password=created.password,
        base=base,
    )


@router.post("/ops/staff")
async def ops_create_staff(
    ctx: OperatorCtx,
    username: Annotated[str, Form(min_length=3, max_length=64)],
    community_id: Annotated[int, Form(gt=0, le=2**31 - 1)],
    display_name: Annotated[str, Form(max_length=64)] = "",
    roles: Annotated[list[str], Form(max_length=4)] = [],  # noqa: B006 - FastAPI reads it
) -> Response:
    return await _create(ctx, "/console/ops/staff", username, display_name, community_id, roles)


@router.post("/c/{cid}/staff")
async def community_create_staff(
    ctx: CommunityCtx,
    username: Annotated[str, Form(min_length=3, max_length=64)],
    display_name: Annotated[str, Form(max_length=64)] = "",
    roles: Annotated[list[str], Form(max_length=4)] = [],  # noqa: B006
) -> Response:
    assert ctx.cid is not None
    return await _create(ctx, f"/console/c/{ctx.cid}/staff", username, display_name, ctx.cid, roles)


def _base(cid: int | None) -> str:
    return f"/console/c/{cid}/staff" if cid else "/console/ops/staff"


@router.post("/staff/{staff_id}/roles")
async def set_roles(
    ctx: StaffCtx,
    staff_id: int,
    community_id: Annotated[int, Form(gt=0, le=2**31 - 1)],
    roles: Annotated[list[str], Form(max_length=4)] = [],  # noqa: B006
    back: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    await staffing.set_roles(ctx.principal, staff_id, community_id, _roles(roles))
    return await done(ctx, _base(back), "done.staff_saved")


@router.post("/staff/{staff_id}/active")
async def set_active(
    ctx: StaffCtx,
    staff_id: int,
    active: Annotated[bool, Form()],
    back: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    await staffing.set_active(ctx.runtime.kv, ctx.principal, staff_id, active)
    return await done(ctx, _base(back), "done.staff_saved")


@router.post("/staff/{staff_id}/reset-password")
async def reset_password(
    ctx: StaffCtx, staff_id: int, back: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0
) -> Response:
    reset = await staffing.reset_password(ctx.runtime.kv, ctx.principal, staff_id)
    return await render(
        ctx,
        "staff_password.html",
        active="staff",
        staff=reset.staff,
        password=reset.password,
        base=_base(back),
    )
