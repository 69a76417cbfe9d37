"""Logging in: residents through WeChat, staff with a password; token refresh and logout."""

from __future__ import annotations

import logging
from functools import lru_cache

from anxin.errors import DomainError, too_many, unauthorized
from anxin.ratelimit import over_limit
from anxin.runtime import Runtime
from auth.passwords import hash_password, hash_password_async, needs_rehash, verify_password_async
from auth.permissions import load_principal
from auth.tokens import (
    TokenPair,
    issue_access_token,
    issue_token_pair,
    revoke_refresh_token,
    revoke_subject,
    rotate_refresh_token,
)
from auth.wechat import WECHAT
from domain import audit
from models import Resident, StaffAccount, StaffRole

log = logging.getLogger(__name__)

STAFF_LOGIN_MAX_FAILURES = 5
STAFF_LOGIN_LOCK_S = 15 * 60
STAFF_LOGIN_MAX_FAILURES_ACCOUNT = 50


WECHAT_LOGIN_WINDOW_S = 60


async def _limit_wechat_logins(runtime: Runtime, client_ip: str) -> None:
    """Every login costs a call to WeChat (whose quota is the app's, shared by everyone):
    bounded per client address and for the whole service, before the call."""
    s = runtime.settings
    for key, limit in (
        (f"wechat-login:ip:{client_ip}", s.wechat_login_per_ip_per_minute),
        ("wechat-login:all", s.wechat_login_global_per_minute),
    ):
        wait = await over_limit(runtime.kv, key, limit, WECHAT_LOGIN_WINDOW_S)
        if wait is not None:
            raise too_many(
                "login_rate_limited",
                "登录请求过于频繁，请稍后再试",
                "too many login attempts, try again later",
                wait,
            )


async def login_resident(
    runtime: Runtime, js_code: str, client_ip: str = ""
) -> tuple[Resident, TokenPair]:
    await _limit_wechat_logins(runtime, client_ip)
    session = await runtime.get(WECHAT).client.code2session(js_code)
    resident = await Resident.get_or_none(openid=session.openid)
    if resident is None:
        resident = await Resident.create(openid=session.openid, unionid=session.unionid)
        await audit.record(
            "resident.created",
            actor_type="resident",
            actor_id=resident.id,
            target_type="resident",
            target_id=resident.id,
        )
    elif session.unionid and resident.unionid != session.unionid:
        resident.unionid = session.unionid
        await resident.save(update_fields=["unionid"])
    # The session_key is not kept: the phone-number API needs only a one-time code.
    return resident, await issue_token_pair(runtime.settings, "resident", resident.id)


async def bind_phone(runtime: Runtime, resident: Resident, phone_code: str) -> Resident:
    info = await runtime.get(WECHAT).client.get_phone_number(phone_code)
    phone = info.pure_phone_number
    # What staff imported for this number waits as invitations (GET /me/invitations):
    # binding a phone never joins a household by itself.
    resident.phone = phone
    await resident.save(update_fields=["phone"])
    await audit.record(
        "resident.phone_bound",
        actor_type="resident",
        actor_id=resident.id,
        target_type="resident",
        target_id=resident.id,
    )
    return resident


def login_failure_key(username: str, client_ip: str | None = None) -> str:
    base = f"staff-login-fail:{username.lower()}"
    return base if client_ip is None else f"{base}:{client_ip}"


async def login_staff(
    runtime: Runtime, username: str, password: str, client_ip: str = ""
) -> tuple[StaffAccount, TokenPair]:
    # Failures count per (username, address), so a stranger cannot lock a guard out from
    # elsewhere, and per username across addresses, so a botnet cannot guess slowly.
    key = login_failure_key(username, client_ip)
    account_key = login_failure_key(username)
    if (
        await runtime.kv.get_int(key) >= STAFF_LOGIN_MAX_FAILURES
        or await runtime.kv.get_int(account_key) >= STAFF_LOGIN_MAX_FAILURES_ACCOUNT
    ):
        # The lock lasts as long as the counter that tripped it (whole seconds, rounded up).
        left = max(await runtime.kv.ttl(key), await runtime.kv.ttl(account_key))
        raise too_many(
            "login_locked",
            "登录失败次数过多，请15分钟后再试",
            "too many failed logins, try again in 15 minutes",
            left if left > 0 else STAFF_LOGIN_LOCK_S,
        )
    staff = await StaffAccount.get_or_none(username=username)
    # Verify against a dummy hash for unknown users so timing does not reveal usernames.
    ok = await verify_password_async(staff.password_hash if staff else _dummy_hash(), password)
    if staff is None or not ok or not staff.is_active:
        failures = await runtime.kv.incr(key, STAFF_LOGIN_LOCK_S)
        await runtime.kv.incr(account_key, STAFF_LOGIN_LOCK_S)
        await audit.record(
            "staff.login_failed",
            actor_type="staff",
            actor_id=staff.id if staff else None,
            details={"username": username[:64], "failures": failures},
        )
        raise unauthorized("invalid_credentials", "wrong username or password", "用户名或密码错误")
    await runtime.kv.delete(key)
    if needs_rehash(staff.password_hash):
        staff.password_hash = await hash_password_async(password)
        await staff.save(update_fields=["password_hash"])
    roles: dict[str, list[str]] = {}
    for row in await StaffRole.filter(staff_id=staff.id).values("community_id", "role"):
        roles.setdefault(str(row["community_id"]), []).append(str(row["role"]))
    await audit.record("staff.login", actor_type="staff", actor_id=staff.id)
    return staff, await issue_token_pair(runtime.settings, "staff", staff.id, {"roles": roles})


async def refresh(runtime: Runtime, refresh_token: str) -> TokenPair:
    subject_type, subject_id, next_refresh = await rotate_refresh_token(
        runtime.settings, refresh_token
    )
    try:
        principal = await load_principal(subject_type, subject_id)
    except DomainError:
        await revoke_subject(subject_type, subject_id, "subject_invalid")
        raise
    extra = None
    if principal.is_staff:
        extra = {"roles": {str(c): sorted(r) for c, r in principal.roles.items()}}
    access = issue_access_token(runtime.settings, subject_type, subject_id, extra)
    return TokenPair(access, next_refresh, runtime.settings.access_token_ttl_s)


async def logout(refresh_token: str) -> None:
    await revoke_refresh_token(refresh_token)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("unknown-user-timing-equaliser")
