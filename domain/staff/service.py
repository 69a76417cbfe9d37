"""Communities and staff accounts: what a city operator (and a community's admin, within
their community) sets up.

* Operators (`StaffAccount.is_operator`) create communities and manage every account.
* A community admin manages the staff of communities they administer: accounts whose
  every role lies in such communities, never an operator's account, and only roles in
  those communities.
* Disabling an account or resetting its password logs it out everywhere: refresh tokens
  are revoked and `staff_epoch` moves on (console sessions from before no longer count).
Every change is audited.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tortoise.transactions import in_transaction

from anxin.errors import conflict, forbidden, invalid, not_found
from anxin.kv import KV
from auth.passwords import MIN_PASSWORD_LENGTH, hash_password_async
from auth.permissions import POLICY, Action, Principal
from auth.tokens import revoke_subject
from domain import audit
from models import City, Community, StaffAccount, StaffRole, StaffRoleName

USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


def staff_epoch_key(staff_id: int) -> str:
    return f"staff-epoch:{staff_id}"


async def staff_epoch(kv: KV, staff_id: int) -> int:
    return await kv.get_int(staff_epoch_key(staff_id))


async def _end_sessions(kv: KV, staff_id: int, reason: str) -> None:
    await revoke_subject("staff", staff_id, reason)
    await kv.incr(staff_epoch_key(staff_id), 400 * 86400)


def require_operator(principal: Principal) -> None:
    if not principal.is_operator:
        raise forbidden("operators only", "仅限运营人员")


def _admin_of(principal: Principal) -> set[int]:
    return {c for c, held in principal.roles.items() if held & POLICY[Action.COMMUNITY_MANAGE]}


def manageable_communities(principal: Principal) -> set[int] | None:
    """None: every community (operator)."""
    if principal.is_operator:
        return None
    if not principal.is_staff:
        raise forbidden("staff only", "仅限物业人员")
    scope = _admin_of(principal)
    if not scope:
        raise forbidden("role does not allow community.manage", "当前岗位无此权限")
    return scope


async def _roles_of(staff_id: int) -> dict[int, set[StaffRoleName]]:
    roles: dict[int, set[StaffRoleName]] = {}
    for row in await StaffRole.filter(staff_id=staff_id).values("community_id", "role"):
        roles.setdefault(row["community_id"], set()).add(StaffRoleName(row["role"]))
    return roles


async def _managed_account(principal: Principal, staff_id: int) -> StaffAccount:
    """The account if `principal` may manage it; not found otherwise (no probing)."""
    scope = manageable_communities(principal)
    staff = await StaffAccount.get_or_none(id=staff_id)
    if staff is None:
        raise not_found("staff")
    if scope is None:
        return staff
    roles = await _roles_of(staff.id)
    if staff.is_operator or not roles or not set(roles) <= scope:
        raise not_found("staff")
    return staff


def _check_community(principal: Principal, community_id: int) -> None:
    scope = manageable_communities(principal)
    if scope is not None and community_id not in scope:
        if community_id in principal.roles:
            raise forbidden("role does not allow community.manage", "当前岗位无此权限")
        raise not_found("community")


# ------------------------------------------------------------------ communities


async def create_community(
    principal: Principal,
    *,
    city: str,
    name: str,
    name_en: str = "",
    address: str = "",
    timezone: str = "Asia/Shanghai",
) -> Community:
    require_operator(principal)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid("bad_timezone", "时区无效", "unknown time zone") from None
    async with in_transaction():
        city_row, _ = await City.get_or_create(name=city.strip())
        if await Community.exists(city=city_row, name=name.strip()):
            raise conflict("community_exists", "该城市已有同名小区", "community already exists")
        community = await Community.create(
            city=city_row,
            name=name.strip(),
            name_en=name_en.strip(),
            address=address.strip(),
            timezone=timezone,
        )
    await audit.record(
        "community.created",
        **principal.audit_actor(),
        community_id=community.id,
        target_type="community",
        target_id=community.id,
        details={"name": community.name, "city": city_row.name},
    )
    return community


async def list_communities(principal: Principal) -> list[Community]:
    require_operator(principal)
    return await Community.all().order_by("id").prefetch_related("city")


# ------------------------------------------------------------------ staff accounts


@dataclass
class NewPassword:
    staff: StaffAccount
    password: str  # shown once to whoever set it up; only its hash is stored


def _check_username(username: str) -> str:
    name = username.strip().lower()
    if not (3 <= len(name) <= 64) or not set(name) <= USERNAME_CHARS:
        raise invalid(
            "bad_username",
            "用户名须为3-64位小写字母、数字或 . _ -",
            "username: 3-64 of a-z 0-9 . _ -",
        )
    return name


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise invalid(
            "weak_password",
            f"密码至少{MIN_PASSWORD_LENGTH}位",
            f"password needs at least {MIN_PASSWORD_LENGTH} characters",
        )


def temporary_password() -> str:
    return secrets.token_urlsafe(12)


async def create_staff(
    principal: Principal,
    *,
    username: str,
    display_name: str,
    community_id: int,
    roles: list[StaffRoleName],
    password: str | None = None,
) -> NewPassword:
    _check_community(principal, community_id)
    if not await Community.exists(id=community_id):
        raise not_found("community")
    if not roles:
        raise invalid("roles_required", "请至少选择一个岗位", "choose at least one role")
    name = _check_username(username)
    secret = password or temporary_password()
    _check_password(secret)
    password_hash = await hash_password_async(secret)
    async with in_transaction():
        if await StaffAccount.exists(username=name):
            raise conflict("username_taken", "用户名已被使用", "username already taken")
        staff = await StaffAccount.create(
            username=name, password_hash=password_hash, display_name=display_name.strip()
        )
        for role in sorted(set(roles)):
            await StaffRole.create(staff=staff, community_id=community_id, role=role)
    await audit.record(
        "staff.created",
        **principal.audit_actor(),
        community_id=community_id,
        target_type="staff",
        target_id=staff.id,
        details={"username": name, "roles": sorted(r.value for r in roles)},
    )
    return NewPassword(staff, secret)


async def list_staff(
    principal: Principal, *, community_id: int | None = None
) -> list[StaffAccount]:
    """Accounts the caller manages (optionally: holding a role in `community_id`)."""
    scope = manageable_communities(principal)
    if community_id is not None:
        _check_community(principal, community_id)
        ids = set(
            await StaffRole.filter(community_id=community_id).values_list("staff_id", flat=True)
        )
        query = StaffAccount.filter(id__in=ids)
    elif scope is None:
        query = StaffAccount.all()
    else:
        staff_ids: list[Any] = await StaffRole.filter(community_id__in=scope).values_list(
            "staff_id", flat=True
        )
        ids = set(staff_ids)
        query = StaffAccount.filter(id__in=ids)
    accounts = await query.order_by("id").prefetch_related("roles")
    if scope is None:
        return accounts
    return [a for a in accounts if not a.is_operator and {r.community_id for r in a.roles} <= scope]


async def set_roles(
    principal: Principal, staff_id: int, community_id: int, roles: list[StaffRoleName]
) -> StaffAccount:
    """The account's roles in `community_id` become exactly `roles` (none: removed)."""
    staff = await _managed_account(principal, staff_id)
    _check_community(principal, community_id)
    if not await Community.exists(id=community_id):
        raise not_found("community")
    if staff.id == principal.id and not principal.is_operator:
        raise forbidden("you cannot change your own roles", "不能修改自己的岗位")
    wanted = sorted(set(roles))
    async with in_transaction():
        await StaffRole.filter(staff_id=staff.id, community_id=community_id).delete()
        for role in wanted:
            await StaffRole.create(staff=staff, community_id=community_id, role=role)
    await audit.record(
        "staff.roles_set",
        **principal.audit_actor(),
        community_id=community_id,
        target_type="staff",
        target_id=staff.id,
        details={"roles": [r.value for r in wanted]},
    )
    return staff


async def set_active(kv: KV, principal: Principal, staff_id: int, active: bool) -> StaffAccount:
    staff = await _managed_account(principal, staff_id)
    if staff.id == principal.id:
        raise forbidden("you cannot disable yourself", "不能停用自己的账号")
    staff.is_active = active
    await staff.save(update_fields=["is_active"])
    if not active:
        await _end_sessions(kv, staff.id, "staff_disabled")
    await audit.record(
        "staff.enabled" if active else "staff.disabled",
        **principal.audit_actor(),
        target_type="staff",
        target_id=staff.id,
    )
    return staff


async def reset_password(kv: KV, principal: Principal, staff_id: int) -> NewPassword:
    """A new temporary password (shown once); the old one and every login end now."""
    staff = await _managed_account(principal, staff_id)
    secret = temporary_password()
    staff.password_hash = await hash_password_async(secret)
    await staff.save(update_fields=["password_hash"])
    await _end_sessions(kv, staff.id, "password_reset")
    await audit.record(
        "staff.password_reset",
        **principal.audit_actor(),
        target_type="staff",
        target_id=staff.id,
    )
    return NewPassword(staff, secret)
